"""Pin a photo set served from a git commit: print its photosets.toml ``files`` entries.

Why this is a real pin: a URL like raw.githubusercontent.com/OWNER/REPO/COMMIT/PATH serves the
blob that COMMIT's tree names, and git addresses blobs by the hash of their content. So the
SHA-256 of that blob, read from any clone that has the commit, is the SHA-256 of every byte
the URL can ever serve; this script checks each blob against its git id before hashing it.
Anyone can repeat it:

    git clone https://github.com/jbhuang0604/SelfExSR && cd SelfExSR
    python scripts/photoset_pins_from_git.py . 18e00f2d1bd3941e9b8d4895d3541543ad86d5b2 \\
        'data/Set5/image_SRF_4/*_HR.png'
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


def pins(repo: Path, commit: str, pattern: str) -> list[tuple[str, int, str]]:
    """(file name, bytes, SHA-256) of every blob under ``commit`` whose path matches."""
    rows = []
    for line in git(repo, "ls-tree", "-r", commit).decode().splitlines():
        meta, path = line.split("\t", 1)
        _, kind, blob = meta.split()
        if kind != "blob" or not fnmatch.fnmatch(path, pattern):
            continue
        data = git(repo, "cat-file", "blob", blob)
        header = f"blob {len(data)}\0".encode()
        if hashlib.sha1(header + data).hexdigest() != blob:
            raise SystemExit(f"{path}: content does not match its git id {blob}")
        rows.append((Path(path).name, len(data), hashlib.sha256(data).hexdigest()))
    if not rows:
        raise SystemExit(f"nothing under {commit} matches {pattern!r}")
    return sorted(rows, key=lambda r: (len(r[0]), r[0]))  # 1.tif, 2.tif, ..., 10.tif


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", type=Path, help="a clone that has the commit")
    ap.add_argument("commit", help="the full commit id the set's base_url names")
    ap.add_argument("pattern", help="fnmatch glob of the set's paths inside the commit")
    args = ap.parse_args()
    print("files = [")
    for name, size, sha in pins(args.repo, args.commit, args.pattern):
        print(f'  {{ name = "{name}", bytes = {size}, sha256 = "{sha}" }},')
    print("]")


if __name__ == "__main__":
    main()
