"""The Lambda layers' last steps (`make layer`): trim what CityShare never loads, then report each
function's unzipped size (its layers and the code asset) against Lambda's 250 MB limit, failing
when a function keeps less than 40 MB of headroom (the bar analytics in space set: GEOS and h3 in the
data layer leave the data functions about 49 MB).

    python -m infra.cloud.layers trim build/layers
    python -m infra.cloud.layers report build/layers
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
from pathlib import Path

from infra.spec import SPEC

LAMBDA_UNZIPPED_LIMIT_MB = 250
HEADROOM_MB = 40

# Relative to a layer's python/ folder. pyarrow: C++ headers, Cython sources and tests; the Arrow
# modules no handler imports (Flight RPC, Substrait's Python module, Gandiva, ORC, CUDA, cloud
# filesystems: CityShare reads local files and S3 through boto3) and the unversioned copies of
# libraries that are loaded by their versioned name. libarrow_substrait stays: libarrow_python needs
# it. `report` checks that every library a remaining one needs is still there.
TRIMMED = {
    "data": (
        "pyarrow/include",
        "pyarrow/tests",
        "pyarrow/src",
        "pyarrow/*.pyx",
        "pyarrow/*.pxd",
        "pyarrow/includes",
        "pyarrow/_flight*.so",
        "pyarrow/libarrow_flight.so*",
        "pyarrow/libarrow_python_flight.so*",
        "pyarrow/_substrait*.so",
        "pyarrow/libarrow_s3.so*",
        "pyarrow/libarrow_python.so",
        "pyarrow/libarrow_python.so.*.*.*",
        "pyarrow/libarrow_python_parquet_encryption.so",
        "pyarrow/libarrow_python_parquet_encryption.so.*.*.*",
        "pyarrow/_pyarrow_cpp_tests*.so",
        "pyarrow/_gandiva*.so",
        "pyarrow/libgandiva.so*",
        "pyarrow/_orc*.so",
        "pyarrow/_dataset_orc*.so",
        "pyarrow/_cuda*.so",
        "pyarrow/_s3fs*.so",
        "pyarrow/_gcsfs*.so",
        "pyarrow/_azurefs*.so",
        "pyarrow/_hdfs*.so",
        "numpy/*/tests",
        "numpy/tests",
    ),
    "core": ("*/tests",),
    "analytics": (),
    "privacy": (),
}


# Provided by the Lambda runtime (Amazon Linux 2023), not by a layer.
SYSTEM_LIBRARIES = {
    "libc.so.6",
    "libm.so.6",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-aarch64.so.1",
    "libz.so.1",
}


def needed_libraries(library: Path) -> list[str]:
    """The DT_NEEDED entries of an ELF64 little-endian shared object (what the loader will look for)."""
    data = library.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    dynamic = next((s for s in sections if s[1] == 6), None)  # SHT_DYNAMIC
    if dynamic is None:
        return []
    strings = sections[dynamic[6]]  # sh_link: its string table
    names = []
    for offset in range(dynamic[4], dynamic[4] + dynamic[5], 16):
        tag, value = struct.unpack_from("<qQ", data, offset)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            start = strings[4] + value
            names.append(data[start : data.index(b"\0", start)].decode())
    return names


def missing_libraries(layer: Path) -> dict[str, list[str]]:
    """Shared objects whose needed libraries are neither in the layer nor the runtime's."""
    present = {f.name for f in layer.rglob("*.so*") if f.is_file()}
    missing = {}
    for library in layer.rglob("*.so*"):
        if library.is_file():
            lacking = [n for n in needed_libraries(library) if n not in present and n not in SYSTEM_LIBRARIES]
            if lacking:
                missing[str(library.relative_to(layer))] = lacking
    return missing


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1024**2


def trim(layers: Path) -> None:
    for layer, patterns in TRIMMED.items():
        root = layers / layer / "python"
        for pattern in patterns:
            for found in root.glob(pattern):
                shutil.rmtree(found) if found.is_dir() else found.unlink()


def report(layers: Path, code: Path | None = None) -> bool:
    sizes = {layer.name: size_mb(layer) for layer in layers.iterdir() if layer.is_dir()}
    fits = True
    for layer in sizes:
        for library, lacking in missing_libraries(layers / layer).items():
            print(f"{layer}: {library} needs {', '.join(lacking)}, which the layer no longer has")
            fits = False
    code_mb = size_mb(code) if code and code.exists() else 0.0
    for function in SPEC.functions:
        total = code_mb + sum(sizes.get(layer, 0.0) for layer in function.layers)
        headroom = LAMBDA_UNZIPPED_LIMIT_MB - total
        fits &= headroom >= HEADROOM_MB
        print(f"{function.name:12} {'+'.join(function.layers):20} {total:6.1f} MB unzipped, {headroom:5.1f} MB headroom")
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("trim", "report"))
    parser.add_argument("layers", type=Path)
    parser.add_argument("--code", type=Path, default=Path("build/function-code"))
    arguments = parser.parse_args()
    if arguments.action == "trim":
        trim(arguments.layers)
    else:
        # The code asset as synth stages it (with its .pyc), so its size counts too.
        from infra.cloud.functions import stage_function_code

        stage_function_code(arguments.code, os.environ.get("LAMBDA_PYTHON"))
    if arguments.action == "report" and not report(arguments.layers, arguments.code):
        sys.exit(f"a function keeps less than {HEADROOM_MB} MB under Lambda's {LAMBDA_UNZIPPED_LIMIT_MB} MB limit")


if __name__ == "__main__":
    main()
