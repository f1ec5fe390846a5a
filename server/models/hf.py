"""``hf:OWNER/REPO/FILE.gguf`` models, for users whose machine can reach the Hugging Face hub.

Offline machines must get an answer in seconds, not a hang: before downloading, the hub's
host is probed with a short TCP connect in a daemon thread (name resolution itself can block
for long). With ``HF_HUB_OFFLINE=1`` only the local huggingface_hub cache is consulted.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from plancode.errors import PlancodeError

PROBE_SECONDS = 5.0


def parse(spec: str) -> tuple[str, str]:
    """Split ``hf:OWNER/REPO/PATH/IN/REPO.gguf`` into (``OWNER/REPO``, ``PATH/IN/REPO.gguf``)."""
    bits = spec.removeprefix("hf:").strip("/").split("/")
    if len(bits) < 3 or not all(bits) or not bits[-1].endswith(".gguf"):
        raise PlancodeError(
            f"bad Hugging Face model spec {spec!r}",
            "write it as hf:OWNER/REPO/FILE.gguf, e.g. "
            "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        )
    return "/".join(bits[:2]), "/".join(bits[2:])


def reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def download(spec: str, cache_dir: Path) -> Path:
    """Download (or find in the local hub cache) the file named by ``spec``."""
    repo, filename = parse(spec)
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError as exc:
        raise PlancodeError(
            "hf: models need the huggingface_hub package, which is not installed",
            "pip install 'plancode[hf]'",
        ) from exc
    cache = str(cache_dir)
    if os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "yes"}:
        cached = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=cache)
        if isinstance(cached, str):
            return Path(cached)
        raise PlancodeError(
            f"{spec} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids download",
            "unset HF_HUB_OFFLINE on a machine with network access, or use a catalog model",
        )
    if not reachable(constants.ENDPOINT):
        raise PlancodeError(
            f"cannot reach the Hugging Face hub ({constants.ENDPOINT}) to fetch {spec}: "
            "this machine looks offline",
            "use a catalog model (`plancode model list`) or a local .gguf path, or download "
            "the file on a connected machine and pass its path",
        )
    try:
        return Path(huggingface_hub.hf_hub_download(repo, filename, cache_dir=cache))
    except Exception as exc:  # the hub raises many types; all mean "could not get the file"
        raise PlancodeError(
            f"could not download {spec}: {exc}",
            "check the repository and file names on the hub and your network access",
        ) from exc
