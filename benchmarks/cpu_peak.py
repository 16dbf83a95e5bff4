"""The CPU's clock and its peak training FLOP/s, to state a measured GFLOP/s as a share of what the cores
could do: FLOP per cycle per core (AMX bf16: 1,024; AVX-512 bf16: 64, i.e. two 512-bit VDPBF16PS of 16 lanes
× 2 FLOP; AVX2 fp32: 32, i.e. two 256-bit FMAs of 8 lanes × 2 FLOP) × cores × clock.

The clock is measured by a dependent chain of integer adds (one per cycle on every x86 core this project
meets) compiled with ``cc`` and timed by the wall clock; without a compiler it is /proc/cpuinfo's "cpu MHz"
(the nominal clock, named as such).

    .venv/bin/python benchmarks/cpu_peak.py [--cores 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from resnetlab import hardware

FLOP_PER_CYCLE = {"amx": 1024, "avx512_bf16": 64, "other": 32}  # per core, at the precision auto trains in
PRECISION = {"amx": "AMX bf16", "avx512_bf16": "AVX-512 bf16", "other": "AVX2 fp32"}
ADDS = 2_000_000_000
PROBE = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    long x = 0; struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < %(loops)d; i++) {
        __asm__ volatile("add $1, %%0\n\tadd $1, %%0\n\tadd $1, %%0\n\tadd $1, %%0\n\t"
                         "add $1, %%0\n\tadd $1, %%0\n\tadd $1, %%0\n\tadd $1, %%0" : "+r"(x));
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%%ld %%.6f\n", x, (b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec));
    return 0;
}
"""


def clock_ghz() -> tuple[float, str]:
    """(GHz, how it was found): measured by the add chain where ``cc`` exists, else the nominal clock."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        with tempfile.TemporaryDirectory() as tmp:
            src, exe = Path(tmp) / "clock.c", Path(tmp) / "clock"
            src.write_text(PROBE % {"loops": ADDS // 8})
            subprocess.run([cc, "-O1", "-o", str(exe), str(src)], check=True)
            best = min(float(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()[1])
                       for _ in range(3))  # fmt: skip
        return ADDS / best / 1e9, "measured: a dependent chain of 2e9 integer adds, the best of 3"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000, "/proc/cpuinfo cpu MHz (nominal, not measured)"
    raise SystemExit("cpu_peak: no C compiler and no cpu MHz in /proc/cpuinfo: give the clock by hand")


def peak_gflops(cores: int = 2) -> dict:
    """The peak at the precision ``--precision auto`` trains in on this CPU kind."""
    kind = hardware.cpu_kind()
    ghz, how = clock_ghz()
    return {"cpu": hardware.describe(), "kind": kind, "precision": PRECISION[kind], "clock_ghz": round(ghz, 3),
            "clock": how, "flop_per_cycle": FLOP_PER_CYCLE[kind], "cores": cores,
            "peak_gflops": round(FLOP_PER_CYCLE[kind] * cores * ghz, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    for key, value in peak_gflops(args.cores).items():
        print(f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
