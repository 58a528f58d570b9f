"""Downloading weight files: HTTP, Google Drive's confirmation page, zips, manual steps.

Generic file transfer, with no knowledge of architectures: it imports only
`radtl.weights` (the manifest and the folders radtl searches). `radtl.pretrained.fetch`
uses it to download the official RadImageNet zip from Google Drive, extract the files
and then verify them against their architectures.

Google Drive answers a direct download of a large file with an HTML "can't scan this
file for viruses" page; `download` follows that page's confirmation form once and
rejects any other HTML (quota exceeded, no access), payloads that are neither zip nor
HDF5 and payloads under a minimum size, so an error page never lands as a `.h5` file.

Example:

```python
from radtl import download

print(download.manual_steps())      # how to get the RadImageNet files by hand
```
"""
import html
import http.cookiejar
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from radtl import weights as weights_lib

_CHUNK = 1 << 20


def manual_steps(dest=None):
    """Human-readable steps to get the RadImageNet files by hand.

    Args:
        dest: str or Path, where to put them. Defaults to
            `radtl.weights.default_fetch_dir()` (`$RADTL_WEIGHTS_DIR`, else the
            checkout's `weights/`, else the Keras cache).

    Returns:
        str.
    """
    info = weights_lib.manifest()
    bundle = info.bundles["radimagenet"]
    dest = Path(dest) if dest else weights_lib.default_fetch_dir()
    entries = [e for e in info.files.values() if e.source == "radimagenet"]
    mirrors = "".join(f"\n     or the mirror: {m}" for m in bundle.mirrors)
    folder = entries[0].url if entries else bundle.url
    return (
        "To install the RadImageNet weights by hand:\n"
        f"  1. Download the Drive folder {folder}\n"
        f"     or the single zip {bundle.url} ({bundle.filename}){mirrors}\n"
        f"  2. Put these files (unzipped) in {dest}:\n"
        + "".join(f"       {e.filename}\n" for e in entries)
        + f"     (or in a folder named by ${weights_lib.ENV_VAR}; the '-notop.h5' "
        "spelling works too)\n"
        "  3. Check them: radtl weights list --verify"
    )


class _HTMLPage(Exception):
    def __init__(self, text):
        super().__init__("HTML page")
        self.text = text


def drive_confirm_url(page, url):
    """The URL that confirms a Google Drive "can't scan for viruses" download page.

    Handles the current page (a form posting to drive.usercontent.google.com with
    hidden `id`, `export`, `confirm`, `uuid` inputs) and the older one (a link or
    cookie carrying `confirm=<token>`).

    Args:
        page: str. The HTML Google Drive returned instead of the file.
        url: str. The URL that returned it.

    Returns:
        str, or None when the page holds no confirmation (quota exceeded, no access).
    """
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', page)
    if form:
        fields = dict(re.findall(
            r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
        action = html.unescape(form.group(1))
        return f"{action}?{urllib.parse.urlencode(fields)}" if fields else action
    link = re.search(r'href="(/uc\?export=download[^"]*confirm=[^"]+)"', page)
    if link:
        return urllib.parse.urljoin(url, html.unescape(link.group(1)))
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token:
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query), confirm=token.group(1))
        query = urllib.parse.urlencode(query)
        return urllib.parse.urlunsplit(parts._replace(query=query))
    return None


def _stream(opener, url, target, timeout):
    """Write `url`'s body to `target`; raise _HTMLPage when the body is HTML."""
    request = urllib.request.Request(url, headers={"User-Agent": "radtl"})
    with opener.open(request, timeout=timeout) as response:
        first = response.read(_CHUNK)
        content_type = response.headers.get("Content-Type", "")
        if "text/html" in content_type or first.lstrip()[:1] == b"<":
            raise _HTMLPage((first + response.read(4 * _CHUNK)).decode("utf8", "replace"))
        with open(target, "wb") as out:
            out.write(first)
            shutil.copyfileobj(response, out, _CHUNK)


def download(url, target, *, timeout=60.0, min_bytes=1_000_000, instructions=""):
    """Download `url` to `target`, following Google Drive's virus-scan confirmation.

    Args:
        url: str. http(s) URL.
        target: Path. Written atomically (via `<target>.part`).
        timeout: float. Seconds per connection attempt. Defaults to 60.
        min_bytes: int. Smaller payloads are rejected. Defaults to 1 MB.
        instructions: str. Appended to every error (e.g. `manual_steps()`).

    Returns:
        Path of the file.

    Raises:
        radtl.weights.WeightsDownloadError: unreachable URL, HTML instead of the file,
            a payload that is neither zip nor HDF5, or smaller than `min_bytes`.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    current = url
    try:
        for _ in range(2):  # the file, or the confirmation page and then the file
            try:
                _stream(opener, current, part, timeout)
                break
            except _HTMLPage as page:
                confirmed = drive_confirm_url(page.text, current)
                if confirmed is None or confirmed == current:
                    raise weights_lib.WeightsDownloadError(
                        f"{url} returned an HTML page instead of the file (Google Drive "
                        "quota exceeded, access denied, or a changed confirmation "
                        "page).\n" + instructions
                    ) from None
                current = confirmed
        else:
            raise weights_lib.WeightsDownloadError(
                f"{url} kept returning HTML after the virus-scan confirmation.\n"
                + instructions
            )
    except (urllib.error.URLError, OSError) as error:
        part.unlink(missing_ok=True)
        raise weights_lib.WeightsDownloadError(
            f"Could not download {current}: {getattr(error, 'reason', error)}. This "
            "machine seems to be offline or cannot reach the host.\n" + instructions
        ) from error
    size = part.stat().st_size
    with open(part, "rb") as f:
        head = f.read(8)
    signatures = (weights_lib.ZIP_SIGNATURE, weights_lib.HDF5_SIGNATURE)
    if not head.startswith(signatures) or size < min_bytes:
        part.unlink()
        raise weights_lib.WeightsDownloadError(
            f"{url} returned {size:,} bytes starting with {head!r}: expected a zip or "
            f"HDF5 file of at least {min_bytes:,} bytes. Google Drive may have served an "
            "error page.\n" + instructions
        )
    part.replace(target)
    return target


def extract(archive, entries, dest, *, instructions=""):
    """Extract from a zip the members whose base name is an accepted name of an entry.

    Args:
        archive: str or Path of a zip file.
        entries: list of radtl.weights.FileEntry to extract.
        dest: Path. Each file is written as `dest / entry.filename` (the canonical
            spelling, whatever the member's spelling).
        instructions: str. Appended to errors (e.g. `manual_steps(dest)`).

    Returns:
        dict: canonical file name -> Path written.

    Raises:
        radtl.weights.WeightsDownloadError: the archive lacks a requested file.
    """
    dest = Path(dest)
    placed = {}
    with zipfile.ZipFile(archive) as zf:
        members = zf.namelist()
        for entry in entries:
            member = next((m for m in members if Path(m).name in entry.names), None)
            if member is None:
                raise weights_lib.WeightsDownloadError(
                    f"The archive {archive} holds no {entry.filename} (accepted names "
                    f"{list(entry.names)}); it holds {members[:10]}.\n" + instructions
                )
            target = dest / entry.filename
            with zf.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            placed[entry.filename] = target
    return placed
