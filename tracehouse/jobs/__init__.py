"""Background jobs that run inside every API process, started and stopped by the app lifespan."""
