"""Building and loading the compiled engine: JIT through torch.utils.cpp_extension, cached.

The build directory is ``$LSTMKIT_CACHE/engine-<digest>`` (default ``~/.cache/lstmkit``),
where the digest covers the C++ sources, the compiler flags, the CPU capability and the
torch and Python versions. A second process with the same digest finds the compiled
module there and only loads it; editing a source or upgrading torch builds a fresh one.

The sources are copied into the build directory and compiled from there: ninja records
absolute source paths, so two checkouts of the same version (a worktree, a CI clone)
building from their own paths would otherwise keep rebuilding each other's cache.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import torch

CSRC = Path(__file__).with_name("csrc")

# Flags for torch's Vectorized<T> at the CPU capability torch itself dispatches to here: ATen's
# vector headers select their AVX2/AVX-512 code by these macros (torch's own kernels are built
# once per capability the same way). Without one, Vectorized<T> falls back to scalar code.
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma",
               "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}

# What the last load did, for tests and the benchmark: build dir, whether it compiled, seconds.
last_build: dict = {}


class EngineUnavailable(RuntimeError):
    """The compiled engine cannot be built or loaded on this machine."""


def sources() -> list[Path]:
    return sorted(p for p in CSRC.iterdir() if p.suffix in (".cpp", ".h"))


def cflags() -> list[str]:
    capability = torch.backends.cpu.get_cpu_capability()
    # -fopenmp: at::parallel_for's OpenMP pragmas are compiled into this module; the runtime it
    # links (libgomp.so.1) is the one torch has already loaded.
    # -falign-*=64: functions and loop heads on cache-line boundaries, so the hot loops sit the same
    # way whatever the linker does with the rest. Without it, a change to gru.cpp and input_share.cpp alone
    # (lstm.o bit-identical) made lstm inference's loop 12-18 % slower at (100,32,256) and
    # (500,16,128) (template code shifted by 16 bytes); with it, both layouts ran as the fast one.
    return ["-O3", "-fopenmp", "-std=c++17", "-falign-functions=64", "-falign-loops=64",
            *_CAPABILITY_FLAGS.get(capability, [])]


def digest() -> str:
    h = hashlib.sha256()
    for p in sources():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(" ".join(cflags()).encode())
    h.update(f"{torch.__version__} {sys.version_info[:2]} {os.environ.get('CXX', 'c++')}".encode())
    return h.hexdigest()[:16]


def build_dir() -> Path:
    base = Path(os.environ.get("LSTMKIT_CACHE") or Path.home() / ".cache" / "lstmkit")
    return base / f"engine-{digest()}"


def module_name() -> str:
    return f"lstmkit_engine_{digest()}"


@contextlib.contextmanager
def _ninja_on_path():
    """cpp_extension runs ``ninja`` from PATH; the pip-installed one lives next to the venv's python."""
    old = os.environ.get("PATH", "")
    extra = [d for d in (os.path.dirname(sys.executable),) if shutil.which("ninja", path=d)]
    if extra and not shutil.which("ninja"):
        os.environ["PATH"] = os.pathsep.join([*extra, old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _stage_sources(directory: Path) -> list[str]:
    """Copy the sources into ``directory/src`` (same digest, same content) and return the .cpp paths."""
    staged = directory / "src"
    staged.mkdir(exist_ok=True)
    for p in sources():
        target = staged / p.name
        if not target.exists() or target.read_bytes() != p.read_bytes():
            tmp = staged / f".{p.name}.{os.getpid()}.tmp"
            tmp.write_bytes(p.read_bytes())
            os.replace(tmp, target)  # atomic: a concurrent build never sees half a file
    return [str(staged / p.name) for p in sources() if p.suffix == ".cpp"]


def compile_and_load():
    """Build (if not cached) and import the extension module; raise EngineUnavailable on failure."""
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise EngineUnavailable(f"no C++ compiler ({cxx!r} is not on PATH)")
    directory = build_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = module_name()
    so = directory / f"{name}.so"
    before = so.stat().st_mtime_ns if so.exists() else None
    start = time.perf_counter()
    if before is None:  # a minute of silence inside someone's first forward call would look like a hang
        print(f"lstmkit: building the compiled engine once (about a minute) in {directory}", file=sys.stderr)
    try:
        with _ninja_on_path():
            module = cpp_extension.load(name=name, sources=_stage_sources(directory),
                                        extra_cflags=cflags(), extra_ldflags=["-fopenmp"],
                                        build_directory=str(directory), verbose=False)
    except Exception as e:  # compiler errors, missing ninja, a broken toolchain: all mean "unavailable"
        raise EngineUnavailable(f"building the engine in {directory} failed: {type(e).__name__}: {e}") from e
    after = so.stat().st_mtime_ns if so.exists() else None
    last_build.clear()
    last_build.update(dir=str(directory), compiled=before != after, seconds=time.perf_counter() - start,
                      so_mtime_ns=after)
    return module
