"""Seeded mutation fuzzing of the checkpoint readers (run by tests/test_hardening_ckpt.py in a
subprocess under an address-space limit; also runnable by hand).

    python tests/ckpt_fuzz.py CASES SEED LIMIT_MB

Saves a small checkpoint, then for each case mutates one file (byte flips, truncation, header
length, header JSON rewrites: dtypes, shapes, offsets, structure tags) and reads it back through
``CheckpointManager.load`` and ``glmx.ckpt.load_file``. Every case must end in a value or a
``GlmxError``/``OSError``; anything else is printed and counted. The last line is JSON:
``{"cases", "failures", "seconds", "per_second"}``.
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from glmx.ckpt import CheckpointManager, load_file, save_file
from glmx.errors import GlmxError

_ODD = [-1, -(2**63), 2**64, 2**70, 0, 1, 3, 1e308, "x", None, [], {}, [[[]]], True, "F32"]
_TAGS = ["__tensor__", "__dtype__", "__bytes__", "__np__", "__ndarray__", "__dict__", "__float__"]


def _limit_memory(extra_mb: int) -> None:
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    cap = vm * 1024 + extra_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _mutate_header(raw: bytes, rng: random.Random) -> bytes:
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    names = [k for k in header if k != "__metadata__"]
    choice = rng.randrange(5)
    if choice == 0 and names:
        header[rng.choice(names)][rng.choice(["dtype", "shape", "data_offsets"])] = rng.choice(_ODD)
    elif choice == 1 and names:
        entry = header[rng.choice(names)]
        entry["shape"] = [rng.choice([-2, 0, 1, 7, 2**40]) for _ in range(rng.randrange(4))]
    elif choice == 2 and names:
        entry = header[rng.choice(names)]
        a, b = entry["data_offsets"]
        entry["data_offsets"] = [max(0, a - rng.randrange(1, 64)), b + rng.randrange(-64, 64)]
    elif choice == 3 and "__metadata__" in header and "glmx.structure" in header["__metadata__"]:
        tag = rng.choice(_TAGS)
        value = rng.choice([*_ODD, "load", "hub", "!!", "a" * 5, "O", "V8"])
        depth = rng.choice([1, 50, 200, 5000])
        header["__metadata__"]["glmx.structure"] = (
            "[" * depth + json.dumps({tag: value}) + ("]" * depth)
        )
    else:
        header = rng.choice(_ODD)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        out = bytearray(raw)
        for _ in range(rng.randrange(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:
        return raw[: rng.randrange(len(raw))]
    if kind == 2:
        return rng.choice([0, 7, 2**63, len(raw), 2**40]).to_bytes(8, "little") + raw[8:]
    return _mutate_header(raw, rng)


def main(cases: int, seed: int, limit_mb: int) -> int:
    _limit_memory(limit_mb)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="glmx-fuzz-"))
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    opt.step()
    manager = CheckpointManager(work / "run", async_save=False)
    ckpt = manager.save(
        3, model, {"optimizer": opt.state_dict(), "extra": {"b": b"\x00", "t": (1,)}}
    )
    single = work / "single.safetensors"
    save_file({"opt": opt.state_dict(), "dtype": torch.float16}, single)
    originals = {p: p.read_bytes() for p in [*ckpt.glob("*.safetensors"), single]}
    failures = 0
    t0 = time.perf_counter()
    for case in range(cases):
        path = rng.choice(list(originals))
        path.write_bytes(_mutate(originals[path], rng))
        for read in (
            lambda: manager.load("last", verify=False),
            lambda p=path: load_file(p),
        ):
            try:
                read()
            except (GlmxError, OSError):
                pass
            except BaseException as err:  # noqa: BLE001 - the point of the test
                failures += 1
                print(f"case {case} ({path.name}): {type(err).__name__}: {err}"[:300])
        path.write_bytes(originals[path])
    seconds = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    result = {"cases": cases, "failures": failures, "seconds": round(seconds, 2)}
    result["per_second"] = round(cases / seconds, 1)
    print(json.dumps(result))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
