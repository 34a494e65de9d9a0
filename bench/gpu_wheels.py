"""The wheels bench/gpu_check.sh installs on a GPU machine that has no package registry: everything
`kerasd[embedded-jax,torch]` brings beyond what that machine already holds (Python 3.12 with JAX and PyTorch for
CUDA, h5py and numpy), at the versions installed here, for CPython 3.12 on manylinux x86_64. Run it on a machine
that reaches PyPI, from kerasd's test environment (its installed metadata is where the list comes from), and carry
the folder over with the source tree (docs/backends.md, "The GPU check").

    .venv/bin/python -m bench.gpu_wheels wheels/     (prints what it fetched and the total size)
    .venv/bin/python -m bench.gpu_wheels --python 3.11 wheels-311/    (for another CPython, e.g. a CPU stand-in)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.extras import closure  # noqa: E402  (the same closure the extras tests follow)

EXTRAS = ("embedded-jax", "torch")
# What the GPU machine holds already: the frameworks with their CUDA libraries, and their own dependencies that
# kerasd's need too (the large ones; small shared ones are fetched anyway, in case they are missing).
ON_THE_MACHINE = re.compile(
    r"^(kerasd|jax|jaxlib|jax-cuda\d+-.*|numpy|h5py|scipy|ml-dtypes|opt-einsum|torch|"
    r"triton|nvidia-.*|sympy|mpmath|networkx|fsspec)$"
)
# The editable install of kerasd itself builds with these (pyproject.toml's build-system), offline too.
BUILD = {"setuptools": ">=69", "wheel": ""}
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)


# The GPU machine's Python (Ubuntu 24.04's).
PYTHON, PYTHON_FULL = "3.12", "3.12.3"


def markers(python: str) -> dict[str, str]:
    """The target interpreter, for the requirements' environment markers (`python_version < "3.12"`, ...)."""
    full = PYTHON_FULL if python == PYTHON else f"{python}.0"
    return {
        "python_version": python,
        "python_full_version": full,
        "implementation_version": full,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
    }


def requirements(python: str = PYTHON) -> list[str]:
    """Each distribution at the version installed here; one that only the target Python needs (not installed here)
    at the newest version pip finds, said on stderr."""
    names = set().union(*(closure(extra, markers(python)) for extra in EXTRAS))
    found = [f"{name}{bound}" for name, bound in BUILD.items()]
    for name in sorted(names):
        if ON_THE_MACHINE.match(name) or name in BUILD:
            continue
        try:
            found.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            print(f"{name}: not installed here, fetched at its newest version", file=sys.stderr)
            found.append(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="wheels")
    parser.add_argument("--python", default=PYTHON, help=f"the target CPython, major.minor (default {PYTHON})")
    args = parser.parse_args()
    if not re.fullmatch(r"3\.\d+", args.python):
        parser.error(f"--python {args.python!r}: give CPython's major.minor, e.g. 3.12")
    target = Path(args.folder)
    target.mkdir(parents=True, exist_ok=True)
    wanted = requirements(args.python)
    abi = "cp" + args.python.replace(".", "")
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            args.python,
            "--implementation",
            "cp",
            "--abi",
            abi,
            "--abi",
            "abi3",
            "--abi",
            "none",
            *platforms,
            "--dest",
            str(target),
            *wanted,
        ],
        check=True,
    )
    wheels = sorted(target.glob("*.whl"))
    total = sum(wheel.stat().st_size for wheel in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    print(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB in {target}")


if __name__ == "__main__":
    main()
