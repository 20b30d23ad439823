"""The imaging modality's own commands: ``medai enhance train|apply`` (denoising)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medai.console import out, print_json

enhance_app = typer.Typer(help="Image enhancement: denoising.", no_args_is_help=True)


@enhance_app.command("train")
def enhance_train(
    dataset: Annotated[str, typer.Option(help="Imaging dataset to learn from.")] = "pneumoniamnist",
    out_dir: Annotated[Path, typer.Option("--out", help="Where the denoiser artifact goes.")] = Path("runs/denoiser"),
    sigma: Annotated[float, typer.Option(help="Gaussian noise level (images in [0, 1]).")] = 0.1,
    epochs: int = 10,
    seed: int = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train a DnCNN denoiser; print PSNR/SSIM on held-out test images against the noisy input and classical filters."""
    from medai.modalities.imaging.enhance import train_denoiser

    metrics = train_denoiser(dataset, out_dir, sigma=sigma, epochs=epochs, seed=seed, progress=not as_json)
    if as_json:
        return print_json(metrics)
    table = Table(title=f"Denoising {dataset} test images, sigma={sigma} (n={metrics['n_test_images']})")
    for column in ("method", "PSNR (dB)", "gain (dB)", "SSIM"):
        table.add_column(column)
    for name, entry in metrics["results"].items():
        table.add_row(name, f"{entry['psnr']:.2f}", f"{entry['psnr_gain_db']:+.2f}", f"{entry['ssim']:.3f}")
    out.print(table)
    out.print(f"denoiser written to {out_dir}")


@enhance_app.command("apply")
def enhance_apply(
    input_path: Annotated[Path, typer.Argument(metavar="IMAGE", help="PNG/JPEG/DICOM/NIfTI slice to denoise.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Denoised PNG.")],
    method: Annotated[str, typer.Option(help="nl-means, tv, or a trained denoiser directory.")] = "nl-means",
) -> None:
    """Denoise one image."""
    from medai.modalities.imaging.enhance import enhance_file

    result = enhance_file(input_path, output, method)
    out.print(f"{result['input']} -> {result['output']} ({method})")
