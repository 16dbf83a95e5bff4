"""The CPU's clock and its peak training FLOP/s, to state a measured GFLOP/s as a share of what the cores
could do: FLOP per cycle per core (AMX bf16: 1,024; AVX-512 bf16: 64, i.e. two 512-bit VDPBF16PS of 16 lanes
× 2 FLOP; AVX2 fp32: 32, i.e. two 256-bit FMAs of 8 lanes × 2 FLOP) × cores × clock.

The clock is measured by a short FMA loop compiled with ``cc``: 256-bit FMAs in 10 independent chains, which
every x86 core this project meets (Zen 2-4, Skylake to Sapphire Rapids) retires at 2 a cycle, timed by the
thread's own CPU time (so that other work on the cores does not slow the reading). A dependent chain of
integer adds, used before, read 4.5-6.4 GHz on an AMX Xeon VM: more than one add a cycle, so not a cycle
counter there. Without a compiler or FMA the clock is lscpu's maximum MHz or /proc/cpuinfo's "cpu MHz",
named as such.

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
FMAS = 2_000_000_000
CHAINS = 10  # independent accumulators: more than FMA latency (4-5 cycles) × 2 FMA ports
PROBE = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec a, b;
    __asm__ volatile("vxorps %%%%ymm0, %%%%ymm0, %%%%ymm0" ::: "xmm0");
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (long i = 0; i < %(loops)d; i++) {
        __asm__ volatile(
            "vfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm0\n\tvfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm1\n\t"
            "vfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm2\n\tvfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm3\n\t"
            "vfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm4\n\tvfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm5\n\t"
            "vfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm6\n\tvfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm7\n\t"
            "vfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm8\n\tvfmadd231ps %%%%ymm10, %%%%ymm11, %%%%ymm9"
            ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9");
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    __asm__ volatile("vzeroupper");
    printf("%%.6f\n", (b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec));
    return 0;
}
"""


def clock_ghz() -> tuple[float, str]:
    """(GHz, how it was found): measured by the FMA loop where ``cc`` and FMA exist, else a nominal clock."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc and "fma" in hardware.cpu_flags():
        with tempfile.TemporaryDirectory() as tmp:
            src, exe = Path(tmp) / "clock.c", Path(tmp) / "clock"
            src.write_text(PROBE % {"loops": FMAS // CHAINS})
            subprocess.run([cc, "-O1", "-o", str(exe), str(src)], check=True)
            best = min(float(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
                       for _ in range(3))  # fmt: skip
        return FMAS / 2 / best / 1e9, "measured: 2e9 256-bit FMAs at 2 a cycle, the thread's CPU time, the best of 3"
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if shutil.which("lscpu") else ""
    for line in lscpu.splitlines():
        if line.startswith("CPU max MHz"):
            return float(line.split(":")[1]) / 1000, "lscpu's CPU max MHz (not measured)"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000, "/proc/cpuinfo cpu MHz (nominal, not measured)"
    raise SystemExit("cpu_peak: no C compiler and no clock in lscpu or /proc/cpuinfo: give the clock by hand")


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
