"""Cold-process query latency and memory over a 10,000-photo catalog.

    python bench/bench_query.py [--n 10000] [--runs 7]

Each query is a new `phototag` process, as a user or script runs it. The catalog
is synthetic (bench/synthetic.py) with the shipped model's name and dimensions;
`similar` gets a photo from outside the catalog, so it loads onnxruntime and embeds it.

phototag's modules are byte-compiled first, as ``pip install`` does for an installed
package: a process that compiles phototag's sources on every start (an editable checkout
under ``PYTHONDONTWRITEBYTECODE=1``, as on these machines) spends ~0.1 s more per query.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import interior_photos

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import fill_catalog, word_points  # noqa: E402

from phototag.models import load_model  # noqa: E402
from phototag.search import refresh  # noqa: E402

#: runs phototag and reports its own peak RSS (VmHWM: ru_maxrss would include the forked bench)
PROBE = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM'):\n"
    "            sys.stderr.write('HWM ' + line.split()[1] + '\\n')\n"
    "atexit.register(hwm)\n"
    "from phototag.cli import main\n"
    "main(sys.argv[1:])\n"
)


#: what every command pays before it does anything: the interpreter and phototag's CLI modules
FLOOR = PROBE.replace("main(sys.argv[1:])\n", "")


def timed(args: list[str], probe: str = PROBE) -> tuple[float, float, float]:
    """Wall time, CPU time (user + system: what a busy machine does not inflate) and peak
    RSS (MB) of one fresh `phototag` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        raise SystemExit(f"phototag {' '.join(args)} failed: {done.stderr}")
    hwm = [line for line in done.stderr.splitlines() if line.startswith("HWM ")]
    return elapsed, cpu, int(hwm[-1].split()[1]) / 1024


def byte_compile() -> None:
    """Byte-compile phototag, as ``pip install`` does for an installed package."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("phototag", "plugins"):
        compileall.compile_dir(root / package, quiet=1)


def report_cold(cases: dict[str, list[str]], runs: int, *, width: int) -> None:
    """Median wall and CPU time and the largest peak RSS of ``runs`` fresh processes per
    case, after one run that warms the OS file cache, as on a machine in use. The first line
    is the floor every command pays (interpreter, click, phototag's CLI modules): this VM's
    speed drifts by a third within minutes, so figures are best read against it."""
    floor = "floor: import phototag.cli"
    for name, argv in {floor: [], **cases}.items():
        probe = FLOOR if name == floor else PROBE
        timed(argv, probe)
        found = [timed(argv, probe) for _ in range(runs)]
        wall = statistics.median(t for t, _, _ in found)
        cpu = statistics.median(c for _, c, _ in found)
        rss = max(r for _, _, r in found)
        print(f"{name:>{width}}: median {wall:.3f} s (cpu {cpu:.3f} s), max RSS {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    byte_compile()
    model = load_model()
    semantic = word_points(model)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.db"
        cat = fill_catalog(catalog, args.n, model.name, visual_dim=model.visual_dim,
                           semantic=semantic)  # fmt: skip
        refresh(cat, model.name)
        outside = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))[0]
        base = ["--catalog", str(catalog)]
        cases = {
            "find --word dog": [*base, "find", "--word", "dog"],
            "find --word 'golden retriever'": [*base, "find", "--word", "golden retriever"],
            "find 2 words --not, 2019 only": [
                *base, "find", "--word", "dog", "--word", "grass", "--not", "cat",
                "--after", "2019", "--before", "2020",
            ],
            "find 2 words --not, after 2015 (all)": [
                *base, "find", "--word", "dog", "--word", "grass", "--not", "cat",
                "--after", "2015",
            ],
            "similar OUTSIDE.jpg": [*base, "similar", str(outside)],
            "status": [*base, "status"],
        }
        print(f"catalog: {args.n} photos; {args.runs} cold runs each; {os.cpu_count()} cores")
        report_cold(cases, args.runs, width=36)


if __name__ == "__main__":
    main()
