"""The Kaggle competition bundle: credentials, and the signed storage URL the API hands out.

Only the API call goes through Kaggle's client library (``kagglesdk``, imported when needed; never
the ``kaggle`` package, which logs in and prints at import time). The bytes themselves go through
our own engine, which resumes, checks and hashes them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archives import KAGGLE_ZIP
from ..errors import (
    DownloadError,
    KaggleCredentialsError,
    KaggleRulesError,
    RemoteNotFoundError,
    without_queries,
)
from .transfer import Retryable, RetryPolicy, retry, retry_after

log = logging.getLogger(__name__)

COMPETITION = "imagenet-object-localization-challenge"
ZIP_NAME = KAGGLE_ZIP  # f"{COMPETITION}.zip", as Kaggle names it
RULES_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
TOKEN_URL = "https://www.kaggle.com/settings"


@dataclass(frozen=True)
class KaggleCredentials:
    origin: str  # where they were found, for messages
    token: str | None = None
    username: str | None = None
    key: str | None = None

    def __repr__(self) -> str:  # never print secrets, not even in a traceback
        return f"KaggleCredentials(origin={self.origin!r})"


def config_dirs(environ: dict[str, str], home: Path) -> list[Path]:
    """Where kaggle.json may live, in the order the kaggle tools look."""
    dirs = [Path(environ["KAGGLE_CONFIG_DIR"])] if environ.get("KAGGLE_CONFIG_DIR") else []
    return dirs + [home / ".kaggle", home / ".config" / "kaggle"]


def find_credentials(environ: dict[str, str] | None = None, home: Path | None = None) -> KaggleCredentials:
    """Credentials in the order users expect: KAGGLE_API_TOKEN, KAGGLE_USERNAME+KAGGLE_KEY, kaggle.json."""
    environ = dict(os.environ if environ is None else environ)
    home = Path.home() if home is None else home
    token = environ.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        if Path(token).is_file():
            return KaggleCredentials(f"the file {token} (KAGGLE_API_TOKEN)", token=Path(token).read_text().strip())
        return KaggleCredentials("KAGGLE_API_TOKEN", token=token)
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return KaggleCredentials(
            "KAGGLE_USERNAME/KAGGLE_KEY", username=environ["KAGGLE_USERNAME"], key=environ["KAGGLE_KEY"]
        )
    searched = config_dirs(environ, home)
    for directory in searched:
        path = directory / "kaggle.json"
        if path.is_file():
            return _from_kaggle_json(path)
    places = ", ".join(str(d / "kaggle.json") for d in searched)
    raise KaggleCredentialsError(
        f"no Kaggle credentials: KAGGLE_API_TOKEN and KAGGLE_USERNAME/KAGGLE_KEY are unset and there is no {places}"
        f" (create a token at {TOKEN_URL}, API section)"
    )


def _from_kaggle_json(path: Path) -> KaggleCredentials:
    try:
        data = json.loads(path.read_text())
        return KaggleCredentials(str(path), username=data["username"], key=data["key"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KaggleCredentialsError(f"{path} is not a kaggle.json with 'username' and 'key' ({error})") from None


def signed_url(credentials: KaggleCredentials, policy: RetryPolicy = RetryPolicy()) -> str:
    """Ask Kaggle's API for the bundle; it answers with a redirect to a signed storage URL."""
    import requests  # a dependency of kagglesdk
    from kagglesdk import KaggleClient
    from kagglesdk.competitions.types.competition_api_service import (
        ApiDownloadDataFilesRequest,
    )

    from .. import __version__

    request = ApiDownloadDataFilesRequest()
    request.competition_name = COMPETITION

    def ask() -> str:
        try:
            with KaggleClient(
                username=credentials.username,
                password=credentials.key,
                api_token=credentials.token,
                user_agent=f"imagenet-cli/{__version__}",
            ) as client:
                # The client follows the redirect and hands back the storage response, unread.
                response = client.competitions.competition_api_client.download_data_files(request)
                url: str = response.url
                response.close()
                return url
        except requests.HTTPError as error:
            raise _api_error(error, credentials) from None
        except requests.RequestException as error:
            log.debug("Kaggle API: %s", without_queries(str(error)))
            raise Retryable(type(error).__name__) from None

    return retry(ask, policy, lambda: "the Kaggle API")


def _api_error(error: Any, credentials: KaggleCredentials) -> Exception:
    """What an HTTP error of the Kaggle API means: an answer to give the user, or a try to repeat."""
    response = error.response
    status = response.status_code if response is not None else None
    if status == 403:
        return KaggleRulesError(f"Kaggle refuses the download until you accept the competition rules at {RULES_URL}")
    if status == 401:
        return KaggleCredentialsError(f"Kaggle rejected the credentials from {credentials.origin} (HTTP 401)")
    if status == 404:
        return RemoteNotFoundError(f"Kaggle has no competition {COMPETITION!r} (HTTP 404)")
    if status != 429 and (status is None or status < 500):
        return DownloadError(f"the Kaggle API answered HTTP {status}: {error}")
    return Retryable(f"HTTP {status}", retry_after(response.headers.get("Retry-After")))
