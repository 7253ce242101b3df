# Copyright (c) 2026 stackops developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
"""Docker images and the registries they come from, for compose_images: local images (`docker image inspect`),
pulls (`docker pull`), and what a tag points to in its registry now (the registry HTTP API v2, asked with docker's
own credentials and its own insecure-registry rules). Parsers and decisions are pure functions, tested over recorded
output."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import socket
import typing as t
from dataclasses import dataclass
from http.client import HTTPException
from urllib.error import HTTPError
from urllib.parse import urlencode

from ansible.module_utils.urls import open_url

from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError

if t.TYPE_CHECKING:
    from ansible_collections.stackops.runbooks.plugins.module_utils._compose import ComposeProject

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# The key docker login stores Docker Hub credentials under (cli/config: registry.IndexServer).
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
NAME_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG = re.compile(r"^\w[\w.-]{0,127}$")
DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')
PULL_DIGEST = re.compile(r"^Digest:\s*(\S+)", re.MULTILINE)
ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i386": "386"}
MANIFEST_LIMIT = 4 * 1024 * 1024


class ImageError(StackopsError):
    """An image could not be read, pulled or asked about."""


@dataclass(frozen=True)
class ImageRef:
    """A normalised image reference, as docker's distribution/reference parses it."""

    domain: str
    path: str
    tag: str
    digest: str
    explicit_domain: bool

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def reference(self) -> str:
        """What a pull resolves: the digest when pinned, else the tag."""
        return self.digest or self.tag

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def auth_key(self) -> str:
        """The server address docker login stores this registry's credentials under."""
        return DOCKER_HUB_AUTH_KEY if self.domain == DOCKER_HUB else self.domain


def parse_reference(text: str) -> ImageRef:
    """`nginx`, `nginx:1.25`, `127.0.2.100:5000/team/app:2`, `ghcr.io/o/a@sha256:...` -> ImageRef."""
    rest, _at, digest = text.strip().partition("@")
    first, slash, remainder = rest.partition("/")
    # distribution/reference: the first component is a registry when it has a dot or a port, is localhost, or has
    # upper case (which a repository name cannot have).
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, explicit = first, True
    else:
        domain, remainder, explicit = DOCKER_HUB, rest, False
    path, colon, tag = remainder.rpartition(":")
    if not colon or "/" in tag:
        path, tag = remainder, ""
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    problems = []
    if not path or not all(NAME_COMPONENT.match(part) for part in path.split("/")):
        problems.append("the repository name must be lower case letters, digits and separators")
    if tag and not TAG.match(tag):
        problems.append(f"the tag {tag!r} is not valid")
    if digest and not DIGEST.match(digest):
        problems.append(f"the digest {digest!r} is not valid")
    if problems:
        raise ImageError(f"Image reference {text!r} is not valid: {'; '.join(problems)}. Fix the service's image.")
    return ImageRef(domain, path, tag or ("" if digest else "latest"), digest, explicit)


@dataclass(frozen=True)
class LocalImage:
    """What `docker image inspect` says about the image a reference points to on this host."""

    id: str
    repo_digests: tuple[str, ...]
    repo_tags: tuple[str, ...]

    def digests_of(self, ref: ImageRef) -> set[str]:
        """The registry digests recorded for ref's repository (RepoDigests hold `name@digest` in familiar form)."""
        found = set()
        for entry in self.repo_digests:
            name, _at, digest = entry.partition("@")
            try:
                same = parse_reference(name).repository == ref.repository
            except ImageError:
                continue
            if same and digest:
                found.add(digest)
        return found


def parse_image_inspect(stdout: str) -> LocalImage | None:
    """`docker image inspect REF` output (a JSON array of one image) -> LocalImage."""
    rows = json.loads(stdout or "[]")
    if not rows:
        return None
    row = rows[0]
    return LocalImage(
        id=row.get("Id", ""),
        repo_digests=tuple(row.get("RepoDigests") or ()),
        repo_tags=tuple(row.get("RepoTags") or ()),
    )


@dataclass(frozen=True)
class PullOutcome:
    ok: bool
    digest: str
    message: str


def parse_pull(rc: int, stdout: str, stderr: str) -> PullOutcome:
    """`docker pull` output: the digest the daemon resolved the tag to, or the daemon's error."""
    match = PULL_DIGEST.search(stdout)
    if rc == 0:
        return PullOutcome(True, match.group(1) if match else "", "")
    lines = [line.strip() for line in (stderr or stdout).splitlines() if line.strip()]
    return PullOutcome(False, "", lines[-1] if lines else f"docker pull exited with code {rc}")


def host_of(domain: str) -> str:
    """`127.0.2.100:5000` -> `127.0.2.100`, `[::1]:5000` -> `::1`, `registry.example` -> itself."""
    if domain.startswith("["):
        return domain[1:].partition("]")[0]
    host, _colon, port = domain.rpartition(":")
    return host if host and port.isdigit() else domain


def resolve(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except OSError:
        return []


def insecure_registry(
    domain: str, registry_config: dict[str, t.Any], lookup: t.Callable[[str], list[str]] = resolve
) -> bool:
    """Whether the daemon talks to this registry without TLS verification (and falls back to plain HTTP), by the
    daemon's own rule (moby registry.isSecureIndex): its per-registry setting, else any of the host's addresses in
    InsecureRegistryCIDRs (127.0.0.0/8 by default)."""
    index = (registry_config.get("IndexConfigs") or {}).get(domain)
    if index is not None:
        return not index.get("Secure", True)
    networks = []
    for cidr in registry_config.get("InsecureRegistryCIDRs") or []:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    for address in lookup(host_of(domain)):
        try:
            ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
        except ValueError:
            continue
        if any(ip.version == net.version and ip in net for net in networks):
            return True
    return False


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull"`."""
    scheme, _space, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def registry_message(body: bytes) -> str:
    """The `errors` of a registry's JSON error body, as one line."""
    try:
        errors = json.loads(body.decode("utf-8", "replace")).get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except (ValueError, AttributeError):
        text = ""
    return text or body.decode("utf-8", "replace").strip()[:200]


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str
    identity_token: str = ""


def config_key(address: str) -> str:
    """docker's ConvertToHostname: `https://reg.example:5000/v1/` -> `reg.example:5000`."""
    for prefix in ("http://", "https://"):
        if address.startswith(prefix):
            address = address[len(prefix) :]
    return address.split("/", 1)[0]


def credential_source(config: dict[str, t.Any], key: str) -> tuple[str, Credentials | None]:
    """Where docker keeps the credentials for a registry: (helper name, None) when a credential helper holds them,
    ("", Credentials) from the config file itself, ("", None) when there are none (anonymous)."""
    helpers = config.get("credHelpers") or {}
    if key in helpers:
        return str(helpers[key]), None
    if config.get("credsStore"):
        return str(config["credsStore"]), None
    auths = config.get("auths") or {}
    entry = auths.get(key)
    if entry is None:
        entry = next((value for name, value in auths.items() if config_key(name) == config_key(key)), None)
    if not entry:
        return "", None
    username, password = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        try:
            username, _colon, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ImageError(
                f"The `auth` entry for {key} in docker's config.json is not base64 of user:password; "
                f"log in again with `docker login {key}`."
            ) from None
    identity = entry.get("identitytoken", "")
    if not (username or identity):
        return "", None
    return "", Credentials(username, password, identity)


def helper_credentials(stdout: str) -> Credentials | None:
    """`docker-credential-<helper> get` output; a `<token>` user means the secret is an identity token."""
    try:
        found = json.loads(stdout)
    except ValueError:
        return None
    username, secret = found.get("Username", ""), found.get("Secret", "")
    if not secret:
        return None
    if username == "<token>":
        return Credentials("", "", secret)
    return Credentials(username, secret)


def normalise_platform(platform: str) -> tuple[str, str, str]:
    """`linux/amd64`, `linux/arm64/v8`, `linux/x86_64` -> (os, architecture, variant)."""
    parts = [p.lower() for p in platform.split("/")] + ["", "", ""]
    os_name, arch, variant = parts[0], ARCH_ALIASES.get(parts[1], parts[1]), parts[2]
    if arch == "arm64" and variant == "v8":
        variant = ""
    return os_name, arch, variant


def select_platform(index: dict[str, t.Any], platform: str) -> str | None:
    """The digest of the manifest an index holds for a platform, as the daemon would choose it."""
    want = normalise_platform(platform)
    matches = []
    for entry in index.get("manifests") or []:
        p = entry.get("platform") or {}
        have = normalise_platform(f"{p.get('os', '')}/{p.get('architecture', '')}/{p.get('variant', '')}")
        if have[:2] == want[:2]:
            matches.append((have[2] != want[2], entry.get("digest")))
    return sorted(matches, key=lambda m: m[0])[0][1] if matches else None


def config_digest(manifest: dict[str, t.Any]) -> str | None:
    """An image manifest's config digest, which is the image ID the daemon gives the pulled image."""
    config = manifest.get("config") or {}
    return config.get("digest") or None


class Docker:
    """The docker CLI beside a compose project: local images, container images, pulls, the daemon's settings."""

    def __init__(self, project: ComposeProject) -> None:
        self.project = project
        self.module = project.module
        self.cli = project.docker()

    def run(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        argv = [*self.cli, *args]
        rc, out, err = self.module.run_command(argv, environ_update=self.project.environ())
        if check and rc != 0:
            self.project.raise_for(argv, rc, out, err)
        return rc, out, err

    def image(self, reference: str) -> LocalImage | None:
        rc, out, err = self.run("image", "inspect", reference, check=False)
        if rc != 0:
            if "No such image" in (err or out):
                return None
            self.project.raise_for([*self.cli, "image", "inspect", reference], rc, out, err)
        try:
            return parse_image_inspect(out)
        except ValueError as exc:
            raise ImageError(f"Could not read `docker image inspect {reference}` output: {exc}: {out[:300]}") from None

    def container_images(self, ids: list[str]) -> dict[str, str]:
        """Container id -> the id of the image it was created from."""
        if not ids:
            return {}
        _rc, out, _err = self.run("inspect", "--format", "{{.Id}} {{.Image}}", *ids)
        found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        return {cid: image for full, image in found.items() for cid in ids if full.startswith(cid)}

    def pull(self, reference: str, platform: str = "") -> PullOutcome:
        args = ["pull", *(["--platform", platform] if platform else []), reference]
        rc, out, err = self.run(*args, check=False)
        if rc != 0 and "Cannot connect to the Docker daemon" in (err or out):
            self.project.raise_for([*self.cli, *args], rc, out, err)
        return parse_pull(rc, out, err)

    def registry_config(self) -> dict[str, t.Any]:
        _rc, out, _err = self.run("info", "--format", "{{json .RegistryConfig}}")
        try:
            return json.loads(out) or {}
        except ValueError:
            return {}

    def platform(self) -> str:
        _rc, out, _err = self.run("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")
        return out.strip() or "linux/amd64"

    def config(self) -> dict[str, t.Any]:
        """docker's client config.json ($DOCKER_CONFIG or ~/.docker of the user the task runs as)."""
        folder = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
        path = os.path.join(folder, "config.json")
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle) or {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ImageError(f"Cannot read docker's config {path}: {exc}; fix or remove it.") from None

    def credentials(self, ref: ImageRef) -> Credentials | None:
        helper, found = credential_source(self.config(), ref.auth_key)
        if helper:
            program = self.module.get_bin_path(f"docker-credential-{helper}")
            if not program:
                raise ImageError(
                    f"docker's config names the credential helper {helper!r} for {ref.domain}, but "
                    f"docker-credential-{helper} is not on PATH; install it or fix ~/.docker/config.json."
                )
            # The server address goes in on stdin and the secret comes back on stdout: never in argv.
            rc, out, _err = self.module.run_command([program, "get"], data=ref.auth_key)
            found = helper_credentials(out) if rc == 0 else None
        if found:
            for secret in (found.secret, found.identity_token):
                if secret:
                    self.module.no_log_values.add(secret)
        return found


class Registry:
    """Asks registries what a reference points to now, over the HTTP API v2 (HEAD and GET of manifests only)."""

    def __init__(self, docker: Docker, timeout: int, registry_config: dict[str, t.Any]) -> None:
        self.docker = docker
        self.timeout = timeout
        self.registry_config = registry_config
        self.authorization: dict[str, str] = {}

    def digest(self, ref: ImageRef) -> str:
        """The digest the reference resolves to now, as a pull would resolve it."""
        headers, _body = self.request(ref, "HEAD", ref.reference)
        digest = headers.get("docker-content-digest", "")
        if not digest:
            # Some registries leave the header out of HEAD answers: the digest is the hash of the manifest.
            _headers, body = self.request(ref, "GET", ref.reference)
            digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        return digest

    def image_id(self, ref: ImageRef, digest: str, platform: str) -> str | None:
        """The image ID a pull of digest gives on this platform (the config digest of the platform's manifest)."""
        headers, body = self.request(ref, "GET", digest)
        manifest = json.loads(body.decode("utf-8"))
        media_type = manifest.get("mediaType") or headers.get("content-type", "")
        if media_type in INDEX_TYPES or "manifests" in manifest:
            chosen = select_platform(manifest, platform)
            if not chosen:
                return None
            headers, body = self.request(ref, "GET", chosen)
            manifest = json.loads(body.decode("utf-8"))
        return config_digest(manifest)

    def request(self, ref: ImageRef, method: str, reference: str) -> tuple[dict[str, str], bytes]:
        insecure = insecure_registry(ref.domain, self.registry_config)
        # An insecure registry is tried over HTTPS without verification first, then plain HTTP, as the daemon does.
        schemes = ("https", "http") if insecure else ("https",)
        failures = []
        for scheme in schemes:
            url = f"{scheme}://{ref.api_host}/v2/{ref.path}/manifests/{reference}"
            try:
                return self.fetch(ref, url, method, insecure)
            except (OSError, HTTPException) as exc:
                # URLError (refused, TLS, DNS) is an OSError; a read timeout or a dropped connection may come bare.
                failures.append(f"{scheme}: {getattr(exc, 'reason', exc)}")
        raise ImageError(f"The registry {ref.domain} could not be reached ({'; '.join(failures)}).")

    def fetch(self, ref: ImageRef, url: str, method: str, insecure: bool) -> tuple[dict[str, str], bytes]:
        for attempt in (1, 2):
            headers = {"Accept": ACCEPT}
            if ref.domain in self.authorization:
                headers["Authorization"] = self.authorization[ref.domain]
            try:
                response = self.open(url, method, headers, insecure)
                body = response.read(MANIFEST_LIMIT) if method == "GET" else b""
                return {k.lower(): v for k, v in response.headers.items()}, body
            except HTTPError as exc:
                body = exc.read(MANIFEST_LIMIT) if exc.fp else b""
                challenge = exc.headers.get("WWW-Authenticate", "") if exc.headers else ""
                if exc.code == 401 and attempt == 1 and challenge:
                    self.authorization[ref.domain] = self.authorize(ref, challenge, insecure)
                    continue
                raise ImageError(self.refusal(ref, exc.code, registry_message(body))) from None
        raise ImageError(f"The registry {ref.domain} kept refusing {ref.path} after authentication.")

    def open(self, url: str, method: str, headers: dict[str, str], insecure: bool, data: bytes | None = None) -> t.Any:
        return open_url(
            url,
            data=data,
            method=method,
            headers=headers,
            timeout=self.timeout,
            validate_certs=not insecure,
            follow_redirects="safe" if method in ("GET", "HEAD") else "none",
            use_netrc=False,
            http_agent="stackops.runbooks.compose_images",
        )

    def refusal(self, ref: ImageRef, code: int, message: str) -> str:
        if code == 404:
            return f"The registry {ref.domain} has no {ref.path}:{ref.reference} ({message})."
        if code in (401, 403):
            return (
                f"The registry {ref.domain} refused access to {ref.path} ({message}); log in with "
                f"`docker login {ref.auth_key}` as the user the task runs as."
            )
        return f"The registry {ref.domain} answered HTTP {code} for {ref.path}:{ref.reference} ({message})."

    def authorize(self, ref: ImageRef, challenge: str, insecure: bool) -> str:
        """The Authorization header a 401 challenge asks for: Basic with docker's credentials, or a Bearer token
        from the registry's token service (anonymous when there are no credentials)."""
        scheme, auth = parse_challenge(challenge)
        creds = self.docker.credentials(ref)
        if scheme == "basic":
            if not creds or not creds.username:
                raise ImageError(
                    f"The registry {ref.domain} needs a login for {ref.path}; run `docker login {ref.auth_key}` as "
                    "the user the task runs as."
                )
            pair = base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()
            self.docker.module.no_log_values.add(pair)
            return f"Basic {pair}"
        if scheme != "bearer" or not auth.get("realm"):
            raise ImageError(f"The registry {ref.domain} asks for an authentication this module does not speak.")
        query = {"service": auth.get("service", ""), "scope": auth.get("scope") or f"repository:{ref.path}:pull"}
        try:
            if creds and creds.identity_token:
                form = {**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token}
                form["client_id"] = "stackops.runbooks"
                response = open_url(
                    auth["realm"],
                    data=urlencode(form).encode(),
                    method="POST",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    timeout=self.timeout,
                    validate_certs=not insecure,
                    use_netrc=False,
                )
            else:
                headers = {}
                if creds and creds.username:
                    pair = base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()
                    self.docker.module.no_log_values.add(pair)
                    headers["Authorization"] = f"Basic {pair}"
                response = self.open(f"{auth['realm']}?{urlencode(query)}", "GET", headers, insecure)
            answer = json.loads(response.read(MANIFEST_LIMIT).decode("utf-8"))
        except HTTPError as exc:
            raise ImageError(
                f"The token service of {ref.domain} refused a token for {ref.path} (HTTP {exc.code}); "
                f"log in with `docker login {ref.auth_key}` as the user the task runs as."
            ) from None
        except (OSError, HTTPException, ValueError) as exc:
            raise ImageError(f"No token from the token service of {ref.domain}: {exc}.") from None
        token = answer.get("token") or answer.get("access_token")
        if not token:
            raise ImageError(f"The token service of {ref.domain} answered without a token.")
        self.docker.module.no_log_values.add(token)
        return f"Bearer {token}"
