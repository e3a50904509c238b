"""Shared fixtures: real photos from scikit-image's wheel, as uint8 arrays and float batches."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch


def photo_u8(name: str, h: int | None = None, w: int | None = None) -> np.ndarray:
    """A real photo (H x W x 3 uint8), optionally the top-left h x w crop."""
    a = getattr(skimage.data, name)()
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[:h, :w, :3])


def to_batch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="device for the device-parametrised tests (cpu, cuda, cuda:N)",
    )


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """`pytest --device cuda` runs the engine-level tests on a GPU (the prepared GPU check)."""
    dev = str(request.config.getoption("--device"))
    if dev.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {dev}: CUDA is not available here")
    return dev


@pytest.fixture
def astronaut() -> np.ndarray:
    return photo_u8("astronaut")


@pytest.fixture(autouse=True)
def _quiet_torchvision_deprecation():
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TorchCodec.*")
        yield


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory):
    """A real tiny study run shared by the report tests (see report_runs.py)."""
    from report_runs import study_run

    return study_run(tmp_path_factory)


@pytest.fixture(scope="session")
def fixed(tmp_path_factory: pytest.TempPathFactory):
    """A real run that reaches a fixed point (PSNR to the previous generation is +inf)."""
    from report_runs import fixed_point_run

    return fixed_point_run(tmp_path_factory)
