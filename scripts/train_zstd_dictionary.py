"""Train the Zstandard dictionary of packed JSON values (format 3, see tracehouse/store/types.py).

The samples are this repository's own text, shaped like what the packed columns hold: the
README's paragraphs as chat messages and completions (OpenAI, OTel GenAI and plain forms),
source files in pieces as tool and code output, and span metadata (resource attributes,
scope, merge keys) with values drawn from the same text. No user data and no benchmark
payload goes in. Deterministic: the same repository text gives the same dictionary.

    python scripts/train_zstd_dictionary.py            # print the figures, write nothing
    python scripts/train_zstd_dictionary.py --write    # write tracehouse/store/zstd_dictionary_2.bin

A released dictionary must never change (stored values need it to be read): training again
is only for a new format with a new file.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import sys
from pathlib import Path

import orjson
import zstandard

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "tracehouse" / "store" / "zstd_dictionary_2.bin"
DICT_SIZE = 16 * 1024


def _paragraphs() -> list[str]:
    texts = [(ROOT / "README.md").read_text(), (ROOT / "bench" / "README.md").read_text()]
    out = []
    for text in texts:
        for block in re.split(r"\n\s*\n", text):
            block = block.strip()
            if 40 <= len(block) <= 4000:
                out.append(block)
    return out


def _code_pieces(rng: random.Random) -> list[str]:
    out = []
    for path in sorted((ROOT / "tracehouse").rglob("*.py")):
        source = path.read_text()
        start = 0
        while start < len(source):
            size = rng.randint(200, 1500)
            out.append(source[start : start + size])
            start += size
    return out


def _words(paragraphs: list[str]) -> list[str]:
    return sorted({w for p in paragraphs for w in re.findall(r"[A-Za-z][a-z]{2,12}", p)})


def _chat_samples(paragraphs: list[str], rng: random.Random) -> list[bytes]:
    out = []
    for i, text in enumerate(paragraphs):
        other = paragraphs[(i * 7 + 3) % len(paragraphs)]
        shapes = [
            [{"role": "system", "content": other[:300]}, {"role": "user", "content": text}],
            {"role": "assistant", "content": text},
            [{"role": "user", "parts": [{"type": "text", "content": text}]}],
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": text}],
                    "finish_reason": "stop",
                }
            ],
            {"messages": [{"role": "user", "content": text}], "temperature": 0.2},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{rng.getrandbits(64):x}",
                        "type": "function",
                        "function": {
                            "name": rng.choice(["search", "lookup", "fetch_page"]),
                            "arguments": orjson.dumps({"query": other[:80]}).decode(),
                        },
                    }
                ],
            },
            text,
        ]
        out.extend(orjson.dumps(s) for s in shapes)
    return out


def _metadata_samples(words: list[str], rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        service = "-".join(rng.sample(words, 2)).lower()
        resource = {
            "service.name": service,
            "service.version": f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            "telemetry.sdk.language": rng.choice(["python", "nodejs", "java", "go"]),
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": f"1.{rng.randint(20, 40)}.0",
            "deployment.environment.name": rng.choice(["production", "staging", "dev"]),
            "host.name": f"{service}-{rng.getrandbits(24):x}",
        }
        scope = {
            "name": rng.choice(["langfuse-sdk", "openinference.instrumentation.openai", "ai"]),
            "version": f"{rng.randint(1, 5)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
            "attributes": {"public_key": f"pk-lf-{rng.getrandbits(48):x}"},
        }
        attrs = {
            f"{rng.choice(words).lower()}.{rng.choice(words).lower()}": rng.choice(words)
            for _ in range(rng.randint(0, 6))
        }
        out.append(
            orjson.dumps({"attributes": attrs, "resourceAttributes": resource, "scope": scope})
        )
    return out


def samples() -> list[bytes]:
    rng = random.Random(20261206)
    paragraphs = _paragraphs()
    out = [p.encode() for p in paragraphs]
    out += [c.encode() for c in _code_pieces(rng)]
    out += _chat_samples(paragraphs, rng)
    out += _metadata_samples(_words(paragraphs), rng, 2000)
    rng.shuffle(out)
    return out


def train() -> zstandard.ZstdCompressionDict:
    # Fixed cover parameters and one thread: no parameter search, the same result every run.
    return zstandard.train_dictionary(
        DICT_SIZE, samples(), k=200, d=8, level=1, dict_id=0x7472_6332, threads=1, steps=1
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {TARGET.name}")
    args = parser.parse_args(argv)
    found = samples()
    print(f"samples: {len(found)}, {sum(map(len, found)):,} bytes")
    dictionary = train()
    data = dictionary.as_bytes()
    print(f"dictionary: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    if args.write:
        TARGET.write_bytes(data)
        print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
