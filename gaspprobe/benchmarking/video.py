"""Writing videos with PyAV (the synthetic benchmark and the fixtures use it; reading lives in
:mod:`gaspprobe.benchmarking.vsibench`)."""

from __future__ import annotations

from pathlib import Path

from gaspprobe import io


def write_video(path: str | Path, frames, fps: int = 10, codec: str = "libx264") -> Path:
    """Write uint8 frames [F, H, W, 3] as an H.264 mp4 (yuv420p), atomically.

    H and W are padded to even sizes by edge replication (yuv420p needs them even); every input
    frame becomes exactly one video frame, so frame indices survive the round trip.
    """
    import av
    import numpy as np

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected [F,H,W,3] uint8, got {frames.shape}")
    F, H, W, _ = frames.shape
    ph, pw = H % 2, W % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    with io.atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as c:
            st = c.add_stream(codec, rate=fps)
            st.width, st.height = frames.shape[2], frames.shape[1]
            st.pix_fmt = "yuv420p"
            st.options = {"crf": "18", "preset": "veryfast"}
            for f in frames:
                for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
    return Path(path)
