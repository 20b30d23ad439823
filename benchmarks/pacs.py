"""PACS benchmark: a 100-image study pushed by C-STORE to MedAI's gateway, to the SR stored in a real Orthanc.

For each image size (28, 64, 128, 224 px, and a study mixing them) it pushes ``--repeats`` studies of
``--images`` single-frame DX instances in one association (pynetdicom as the modality) and times, per study:
from the first C-STORE to MedAI until the SR is found in Orthanc (QIDO-RS polled every 50 ms), and until the
Grad-CAM captures are stored too. The gateway runs in-process with its durable queue on SQLite, the encrypted
spool, de-identification of every instance, a small CNN (28 px like the built-in PneumoniaMNIST recipe, trained
here on the toy task for a few seconds)
with Grad-CAM for every image, and the hash-chained audit log; Orthanc (Debian's package, with its DICOMweb
plugin) runs on free loopback ports.

    python benchmarks/pacs.py [--images 100] [--repeats 3] [--no-readme]

Figures depend on the machine and its load: run on an otherwise idle machine for figures to quote.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
from readme_table import update_readme  # noqa: E402

SIZES = {"28 px": (28,), "64 px": (64,), "128 px": (128,), "224 px": (224,), "28-224 px mixed": (28, 64, 128, 224)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-pacs-bench-"))
    os.environ["MEDAI_HOME"] = str(work / "home")
    import pacs_support as ps

    from medai.gateway.config import Destination, GatewayConfig
    from medai.gateway.routing import Router
    from medai.gateway.service import Gateway
    from medai.registry import Registry

    Registry().register(ps.train_toy_model(work, size=28), name="xray")
    orthanc = ps.start_orthanc(work / "orthanc")
    config = GatewayConfig(port=0, allowed_aes=("MODALITY",), settle_s=2,
                           send_to=Destination(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port))
    rows = []
    try:
        with Gateway(config, Router.single("xray")) as gateway:
            warm = ps.make_study(4, sizes=(64,), seed=99)
            ps.push(warm, gateway.port)
            orthanc.wait_for_modality(warm[0].StudyInstanceUID, "SR", timeout=300)
            for label, sizes in SIZES.items():
                to_sr, to_all, receive, stages = [], [], [], []
                for repeat in range(args.repeats):
                    study = ps.make_study(args.images, sizes=sizes, seed=repeat)
                    uid = study[0].StudyInstanceUID
                    start = time.perf_counter()
                    statuses = ps.push(study, gateway.port)
                    received = time.perf_counter()
                    assert statuses == [0] * args.images, statuses
                    while not [s for s in orthanc.series_of(uid) if s["00080060"]["Value"] == ["SR"]]:
                        time.sleep(0.05)
                    stored = time.perf_counter()
                    while not [s for s in orthanc.series_of(uid) if s["00080060"]["Value"] == ["OT"]
                               and s.get("00201209", {}).get("Value") == [args.images]]:
                        time.sleep(0.05)
                    done = time.perf_counter()
                    wait_for_done = time.monotonic() + 60
                    while gateway.store.batches()[-1].status != "done" and time.monotonic() < wait_for_done:
                        time.sleep(0.05)
                    stages.append((gateway.store.batches()[-1].outputs or {}).get("seconds", {}))
                    to_sr.append(stored - start)
                    to_all.append(done - start)
                    receive.append(args.images / (received - start))
                    print(f"{label} #{repeat + 1}: C-STORE {received - start:.2f} s, SR in Orthanc after "
                          f"{stored - start:.2f} s, captures after {done - start:.2f} s", flush=True)
                stage = {k: statistics.median(s.get(k, 0.0) for s in stages) for k in ("infer", "build", "send")}
                rows.append((label, len(to_sr), args.images * len(to_sr) / sum(to_sr), percentile(to_sr, 50),
                             percentile(to_sr, 99), percentile(to_all, 50), statistics.mean(receive), stage))
    finally:
        ps.stop_orthanc(orthanc)
    table = [f"| {args.images}-image study | studies | images/s (receipt to SR stored) | p50 s per study | "
             "p99 s per study | p50 s to SR + all captures stored | C-STORE receipt images/s | "
             "infer / build / send s (median) |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.0f} | "
              f"{r[7]['infer']:.1f} / {r[7]['build']:.1f} / {r[7]['send']:.1f} |" for r in rows]
    table.append("")
    load = os.getloadavg()[0]
    table.append(f"{os.cpu_count()} cores (load average {load:.0f} while it ran); gateway, Orthanc and the sender on "
                 f"one machine; p99 of {args.repeats} studies is close to their maximum; every image de-identified, "
                 "inferred with Grad-CAM and audited; send = the SR and the 100 captures stored by C-STORE")
    markdown = "\n".join(table)
    print(markdown)
    if not args.no_readme and update_readme("pacs", markdown):
        print("README.md updated")


if __name__ == "__main__":
    main()
