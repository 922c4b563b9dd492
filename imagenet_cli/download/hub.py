"""``download --source hf``: Hugging Face's ``ILSVRC/imagenet-1k``.

``huggingface_hub`` says where each file is and what it is: its resolve URL (``HF_ENDPOINT`` for a
mirror), the sha256 the hub publishes for it (its LFS object id), its size, and the token (from
``HF_TOKEN`` or the login cache); a missing token or terms not accepted are its errors, said here
in one line naming the dataset's page. The bytes come through this project's own engine, as for
every other source: resumable across stops with ``If-Range``, on several connections, hashed as
they arrive and checked against that sha256 before the file gets its name, with a record. The
token goes to the hub's host only; the storage it redirects to gets none.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from .. import archives
from ..errors import DownloadError, HubAccessError, MissingExtraError
from .transfer import Remote

REPO = "ILSVRC/imagenet-1k"
PAGE = f"https://huggingface.co/datasets/{REPO}"
FILES = (*archives.HUB_TRAIN, archives.HUB_VAL, archives.HUB_TEST)
DEFAULT_FILES = (*archives.HUB_TRAIN, archives.HUB_VAL)


def hub_client() -> ModuleType:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingExtraError.of("download --source hf", "huggingface_hub", "hf") from None
    return huggingface_hub


def endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` as it is now (the client reads it once, when imported)."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def remotes(names: list[str], revision: str, token: str | None) -> tuple[list[Remote], str | None]:
    """Each file as the hub describes it, and the token to fetch them with."""
    hub = hub_client()
    bearer = token or hub.get_token()
    found = []
    for name in names:
        url = hub.hf_hub_url(REPO, f"data/{name}", repo_type="dataset", revision=revision, endpoint=endpoint())
        metadata = _guarded(hub.get_hf_file_metadata, url, revision, token=bearer)
        expected = {"sha256": metadata.etag} if metadata.etag and len(metadata.etag) == 64 else {}
        # The commit a branch or tag resolved to: which version of the dataset these bytes are.
        details = {
            "repo": REPO,
            "revision": revision,
            **({"commit": metadata.commit_hash} if metadata.commit_hash else {}),
        }
        found.append(Remote(name, url, expected, metadata.size, details))
    return found, bearer


def _guarded(call: Any, url: str, revision: str, **kwargs: Any) -> Any:
    """The hub client's call, its refusals in our words (the page whose terms to accept named)."""
    from huggingface_hub import errors

    try:
        return call(url, **kwargs)
    except errors.GatedRepoError:
        raise HubAccessError(
            f"the hub refused {REPO}: its terms are not accepted for this account; accept them on {PAGE}"
        ) from None
    except errors.RepositoryNotFoundError:
        raise HubAccessError(
            f"the hub refused {REPO} without a valid token: log in (hf auth login, or HF_TOKEN) and accept "
            f"its terms on {PAGE}"
        ) from None
    except errors.RevisionNotFoundError:
        raise DownloadError(f"{REPO} has no revision {revision!r}") from None
    except errors.HfHubHTTPError as error:
        raise DownloadError(f"the hub answered: {str(error).splitlines()[0]}") from None
