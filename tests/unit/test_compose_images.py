"""compose_images' planner and plugins/module_utils/_images.py over output recorded on the lab
(tests/unit/fixtures/images/): docker CLI 28.2.2 against Engine 20.10.24, and the Debian docker-registry 2.8.2
serving on 127.0.2.100 (a manifest list made with `docker manifest create/push`, an htpasswd registry for 401)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _images as images
from ansible_collections.stackops.runbooks.plugins.module_utils._images import ImageError, LocalImage, PullOutcome
from ansible_collections.stackops.runbooks.plugins.modules import compose_images as module

FIXTURES = Path(__file__).parent / "fixtures" / "images"
TINY_ID = "sha256:a9126823c4dc7a6bc99466cee32ecb964aa486674a3c70f626d011379536d248"
TINY_DIGEST = "sha256:68ac7def07f0d8dec24cbde1d9cd75cea7a2cc3edbba4c08d5c3b5c277c6c418"
MULTI_DIGEST = "sha256:c47116c604740f3ee4acc70973324ddaf39b1b5cae37ba5e6d694fed18d833e7"
ARM_DIGEST = "sha256:38cb6adf2f199dc0d8cade5b9023382ff6671c13ce7579da31261617f2b1b208"
NEW_ID = "sha256:3ae78ce3f40412df4a1352a827e5d9b00a5617154ef1c3bffa5296739a994c4c"
NEW_DIGEST = "sha256:ad477cb6f1660edfab4ff612e2748b684dd18a649514fb1af5d7bae206397305"
LAB_ID = "sha256:64a52fa31b664552b9942a7613582382e424291d8bc952bedcf326cff6914a04"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def headers(name: str) -> dict[str, str]:
    lines = fixture(name).splitlines()[1:]
    pairs = (line.partition(":") for line in lines if ":" in line)
    return {key.strip().lower(): value.strip() for key, _colon, value in pairs}


def pulled_index() -> LocalImage:
    found = images.parse_image_inspect(fixture("engine-20.10.24-image-inspect-pulled-index.json"))
    assert found is not None
    return found


def imported() -> LocalImage:
    found = images.parse_image_inspect(fixture("engine-20.10.24-image-inspect-imported.json"))
    assert found is not None
    return found


# --- references ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "explicit"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", "", False),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", "", False),
        ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", "", False),
        ("docker.io/nginx:1", "docker.io", "library/nginx", "1", "", True),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", "", True),
        ("127.0.2.100:5000/exp/tiny:1", "127.0.2.100:5000", "exp/tiny", "1", "", True),
        ("localhost/app", "localhost", "app", "latest", "", True),
        (f"localhost:5000/app@{TINY_DIGEST}", "localhost:5000", "app", "", TINY_DIGEST, True),
        (f"ghcr.io/o/a:2@{TINY_DIGEST}", "ghcr.io", "o/a", "2", TINY_DIGEST, True),
        ("Registry/app:1", "Registry", "app", "1", "", True),
        ("stackops-lab:321b2177266e", "docker.io", "library/stackops-lab", "321b2177266e", "", False),
    ],
)
def test_references_normalise_as_docker_does(
    text: str, domain: str, path: str, tag: str, digest: str, explicit: bool
) -> None:
    ref = images.parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest, ref.explicit_domain) == (domain, path, tag, digest, explicit)
    assert ref.reference == (digest or tag)


def test_docker_hub_is_asked_at_its_api_host_with_its_login_key() -> None:
    hub = images.parse_reference("nginx:1")
    assert (hub.api_host, hub.auth_key, hub.repository) == (
        "registry-1.docker.io",
        "https://index.docker.io/v1/",
        "docker.io/library/nginx",
    )
    own = images.parse_reference("127.0.2.100:5000/exp/tiny:1")
    assert (own.api_host, own.auth_key) == ("127.0.2.100:5000", "127.0.2.100:5000")


@pytest.mark.parametrize("text", ["", "Nginx:1", "app:bad tag", "app@sha256:short", "a//b"])
def test_bad_references_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(ImageError, match="is not valid"):
        images.parse_reference(text)


# --- local images and pulls -------------------------------------------------------------------------------


def test_repo_digests_are_matched_by_repository() -> None:
    local = pulled_index()
    assert local.id == TINY_ID
    # One image, pulled as a manifest list under one name and pushed under another: the digest each recorded.
    assert local.digests_of(images.parse_reference("127.0.2.100:5000/exp/multi:1")) == {MULTI_DIGEST}
    assert local.digests_of(images.parse_reference("127.0.2.100:5000/exp/tiny:9")) == {TINY_DIGEST}
    assert local.digests_of(images.parse_reference("exp/tiny:1")) == set()


def test_an_imported_image_has_no_registry_digest() -> None:
    local = imported()
    assert (local.id, local.repo_digests) == (LAB_ID, ())
    assert images.parse_image_inspect("[]") is None


@pytest.mark.parametrize(
    ("name", "rc", "ok", "digest", "message"),
    [
        ("engine-20.10.24-pull-downloaded.txt", 0, True, ARM_DIGEST, ""),
        ("engine-20.10.24-pull-up-to-date.txt", 0, True, ARM_DIGEST, ""),
        (
            "engine-20.10.24-pull-connection-refused.txt",
            1,
            False,
            "",
            'Error response from daemon: Get "http://127.0.2.101:5000/v2/": dial tcp 127.0.2.101:5000: connect: '
            "connection refused",
        ),
        (
            "engine-20.10.24-pull-manifest-unknown.txt",
            1,
            False,
            "",
            "Error response from daemon: manifest for 127.0.2.100:5000/exp/nope:1 not found: manifest unknown: "
            "manifest unknown",
        ),
    ],
)
def test_pull_output(name: str, rc: int, ok: bool, digest: str, message: str) -> None:
    text = fixture(name)
    outcome = images.parse_pull(rc, text if ok else "", "" if ok else text)
    assert outcome == PullOutcome(ok, digest, message)


# --- registries ------------------------------------------------------------------------------------------


def registry_config() -> dict:
    return json.loads(fixture("engine-20.10.24-docker-info-registry-config.json"))


@pytest.mark.parametrize(
    ("domain", "addresses", "insecure"),
    [
        ("127.0.2.100:5000", None, True),  # the daemon's default 127.0.0.0/8
        ("docker.io", None, False),  # configured as secure
        ("localhost:5000", ["127.0.0.1", "::1"], True),
        ("registry.example.com", ["203.0.113.7"], False),
        ("registry.example.com", [], False),  # unresolvable: secure, as the daemon decides
        ("[::1]:5000", None, False),
    ],
)
def test_insecure_registries_by_the_daemons_rule(domain: str, addresses: list[str] | None, insecure: bool) -> None:
    lookup = images.resolve if addresses is None else (lambda _host: addresses)
    assert images.insecure_registry(domain, registry_config(), lookup) is insecure


def test_per_registry_setting_wins_over_cidrs() -> None:
    config = registry_config()
    config["IndexConfigs"]["127.0.2.100:5000"] = {"Name": "127.0.2.100:5000", "Secure": True}
    config["InsecureRegistryCIDRs"].append("::1/128")
    assert images.insecure_registry("127.0.2.100:5000", config) is False
    assert images.insecure_registry("[::1]:5000", config) is True


def test_challenges() -> None:
    basic = headers("registry-2.8.2-unauthorized-basic.headers")["www-authenticate"]
    assert images.parse_challenge(basic) == ("basic", {"realm": "stackops-test"})
    # Docker Hub's form, from the distribution token spec (spec/auth/token.md of docker-registry 2.8.2).
    bearer = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert images.parse_challenge(bearer) == (
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:samalba/my-app:pull,push",
        },
    )


def test_registry_error_bodies_become_one_line() -> None:
    unknown = (FIXTURES / "registry-2.8.2-manifest-unknown.json").read_bytes()
    assert images.registry_message(unknown) == "MANIFEST_UNKNOWN: manifest unknown"
    denied = (FIXTURES / "registry-2.8.2-unauthorized-basic.json").read_bytes()
    assert images.registry_message(denied) == "UNAUTHORIZED: authentication required"
    assert images.registry_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"


def test_a_heads_digest_is_the_hash_of_the_manifest_it_names() -> None:
    # Where a registry leaves Docker-Content-Digest out, the module hashes the manifest it GETs.
    for name in ("manifest-list", "manifest-v2"):
        body = (FIXTURES / f"registry-2.8.2-{name}.json").read_bytes()
        header = headers(f"registry-2.8.2-{name}.headers")["docker-content-digest"]
        assert f"sha256:{hashlib.sha256(body).hexdigest()}" == header


def test_a_manifests_config_digest_is_the_image_id_a_pull_gives() -> None:
    manifest = json.loads(fixture("registry-2.8.2-manifest-v2.json"))
    assert images.config_digest(manifest) == TINY_ID == pulled_index().id
    assert images.config_digest(json.loads(fixture("registry-2.8.2-manifest-list.json"))) is None


@pytest.mark.parametrize(
    ("platform", "digest"),
    [
        ("linux/amd64", TINY_DIGEST),
        ("linux/x86_64", TINY_DIGEST),
        ("linux/arm64", ARM_DIGEST),
        ("linux/arm64/v8", ARM_DIGEST),
        ("linux/s390x", None),
        ("windows/amd64", None),
    ],
)
def test_platform_of_a_manifest_list(platform: str, digest: str | None) -> None:
    index = json.loads(fixture("registry-2.8.2-manifest-list.json"))
    assert images.select_platform(index, platform) == digest


def test_a_variant_match_is_preferred() -> None:
    index = {
        "manifests": [
            {"digest": "sha256:v6", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
            {"digest": "sha256:v7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        ]
    }
    assert images.select_platform(index, "linux/arm/v7") == "sha256:v7"


# --- credentials from docker's config --------------------------------------------------------------------


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("config", "key", "expected"),
    [
        ({}, "127.0.2.100:5001", ("", None)),
        ({"auths": {"127.0.2.100:5001": {"auth": auth("ops", "pw:with:colons")}}}, "127.0.2.100:5001",
         ("", images.Credentials("ops", "pw:with:colons"))),
        ({"auths": {"https://reg.example:5000/v1/": {"auth": auth("a", "b")}}}, "reg.example:5000",
         ("", images.Credentials("a", "b"))),
        ({"auths": {"https://index.docker.io/v1/": {"auth": auth("hub", "t")}}}, "https://index.docker.io/v1/",
         ("", images.Credentials("hub", "t"))),
        ({"auths": {"reg.example": {"identitytoken": "refresh"}}}, "reg.example",
         ("", images.Credentials("", "", "refresh"))),
        ({"auths": {"reg.example": {}}}, "reg.example", ("", None)),  # docker login left an empty entry
        ({"credsStore": "pass", "auths": {"reg.example": {}}}, "reg.example", ("pass", None)),
        ({"credsStore": "pass", "credHelpers": {"reg.example": "ecr-login"}}, "reg.example", ("ecr-login", None)),
    ],
)  # fmt: skip
def test_credentials_are_found_where_docker_keeps_them(config: dict, key: str, expected: tuple) -> None:
    assert images.credential_source(config, key) == expected


def test_a_broken_auth_entry_names_the_registry_and_the_fix() -> None:
    with pytest.raises(ImageError, match=r"reg\.example.*docker login reg\.example"):
        images.credential_source({"auths": {"reg.example": {"auth": "not base64!"}}}, "reg.example")


def test_credential_helper_answers() -> None:
    assert images.helper_credentials('{"ServerURL":"r","Username":"u","Secret":"s"}') == images.Credentials("u", "s")
    assert images.helper_credentials('{"Username":"<token>","Secret":"t"}') == images.Credentials("", "", "t")
    assert images.helper_credentials("credentials not found in native keychain") is None


# --- the planner ----------------------------------------------------------------------------------------

REGISTRY_IMAGE = "127.0.2.100:5000/exp/tiny:1"
PUSHED = LocalImage(TINY_ID, (f"127.0.2.100:5000/exp/tiny@{TINY_DIGEST}",), (REGISTRY_IMAGE,))


@pytest.mark.parametrize(
    ("spec", "image", "local", "reason"),
    [
        ({"image": REGISTRY_IMAGE}, REGISTRY_IMAGE, PUSHED, ""),
        ({"image": REGISTRY_IMAGE}, REGISTRY_IMAGE, None, ""),  # not here yet: a pull fetches it
        ({"image": "nginx:1"}, "nginx:1", None, ""),
        ({"image": "stackops-lab:1"}, "stackops-lab:1", imported(), "built or imported on this host"),
        # A registry host in the reference: pulled even without a digest recorded here.
        ({"image": "127.0.2.100:5000/exp/app:2"}, "127.0.2.100:5000/exp/app:2", imported(), ""),
        ({"build": {"context": "."}}, "proj-web", None, "built from its build section"),
        ({"build": {"context": "."}, "image": "reg.example/web:1"}, "reg.example/web:1", imported(), "built from"),
        ({"build": {"context": "."}, "image": REGISTRY_IMAGE}, REGISTRY_IMAGE, PUSHED, ""),
        ({"image": REGISTRY_IMAGE, "pull_policy": "never"}, REGISTRY_IMAGE, PUSHED, "pull_policy is never"),
        ({"image": f"nginx@{TINY_DIGEST}"}, f"nginx@{TINY_DIGEST}", None, "pinned to a digest"),
    ],
)
def test_what_comes_from_a_registry(spec: dict, image: str, local: LocalImage | None, reason: str) -> None:
    found = module.skip_reason(spec, image, local)
    assert found.startswith(reason) if reason else found == ""


def test_sources_name_build_only_images_as_compose_does() -> None:
    specs: dict[str, dict] = {
        "web": {"build": {"context": "."}},
        "app": {"image": REGISTRY_IMAGE, "platform": "linux/arm64"},
    }
    sources = module.plan_sources(specs, "shop", {"shop-web": None, REGISTRY_IMAGE: PUSHED})
    assert [(s.service, s.image, s.platform, bool(s.skip)) for s in sources] == [
        ("web", "shop-web", "", True),
        ("app", REGISTRY_IMAGE, "linux/arm64", False),
    ]


def test_each_registry_image_is_pulled_once() -> None:
    sources = [
        module.Source("a", REGISTRY_IMAGE, "", ""),
        module.Source("b", REGISTRY_IMAGE, "linux/amd64", ""),
        module.Source("c", "nginx:1", "", ""),
        module.Source("d", "lab:1", "", "built or imported"),
    ]
    assert module.to_pull(sources) == {REGISTRY_IMAGE: "linux/amd64", "nginx:1": ""}


REF = images.parse_reference(REGISTRY_IMAGE)


@pytest.mark.parametrize(
    ("local", "digest", "remote_id", "expected"),
    [
        (PUSHED, TINY_DIGEST, None, module.Fetch(False, TINY_DIGEST, TINY_ID)),
        (PUSHED, NEW_DIGEST, NEW_ID, module.Fetch(True, NEW_DIGEST, NEW_ID)),
        (PUSHED, NEW_DIGEST, None, module.Fetch(True, NEW_DIGEST, None)),
        # Loaded from a tar (no digest here), same image in the registry: a pull would only record the digest.
        (LocalImage(TINY_ID, (), (REGISTRY_IMAGE,)), TINY_DIGEST, TINY_ID, module.Fetch(False, TINY_DIGEST, TINY_ID)),
        # containerd's image store names an image by its manifest (list) digest.
        (LocalImage(MULTI_DIGEST, (), ()), MULTI_DIGEST, None, module.Fetch(False, MULTI_DIGEST, MULTI_DIGEST)),
        (None, TINY_DIGEST, None, module.Fetch(True, TINY_DIGEST, None)),
    ],
)
def test_check_mode_predicts_whether_a_pull_changes_the_image(
    local: LocalImage | None, digest: str, remote_id: str | None, expected: module.Fetch
) -> None:
    assert module.predict(REF, local, digest, remote_id) == expected


def test_a_real_pull_changed_only_when_the_image_id_did() -> None:
    new = LocalImage(NEW_ID, (f"127.0.2.100:5000/exp/tiny@{NEW_DIGEST}",), (REGISTRY_IMAGE,))
    assert module.after_pull(PUSHED, new, PullOutcome(True, NEW_DIGEST, "")) == module.Fetch(True, NEW_DIGEST, NEW_ID)
    assert module.after_pull(PUSHED, PUSHED, PullOutcome(True, TINY_DIGEST, "")).pulled is False
    assert module.after_pull(None, PUSHED, PullOutcome(True, TINY_DIGEST, "")).pulled is True
    failed = module.after_pull(None, None, PullOutcome(False, "", "connection refused"))
    assert failed == module.Fetch(False, None, None, "connection refused")


def plan_report(fetch: module.Fetch | None, local: LocalImage | None, running: list[str]) -> dict:
    sources = [
        module.Source("app", REGISTRY_IMAGE, "", ""),
        module.Source("worker", REGISTRY_IMAGE, "", ""),
        module.Source("local", "stackops-lab:1", "", "built or imported on this host"),
    ]
    return module.report(
        sources,
        {"app": running, "local": [LAB_ID]},
        {REGISTRY_IMAGE: local, "stackops-lab:1": imported()},
        {REGISTRY_IMAGE: fetch} if fetch else {},
    )


def test_report_without_pull() -> None:
    result = plan_report(None, PUSHED, [TINY_ID])
    assert result["images"][0] == {
        "service": "app",
        "image": REGISTRY_IMAGE,
        "registry": True,
        "container_image_id": TINY_ID,
        "local_image_id": TINY_ID,
        "remote_digest": None,
        "pulled": False,
        "update_available": False,
    }
    # A service without a container has nothing to update.
    assert result["images"][1]["container_image_id"] is None and not result["images"][1]["update_available"]
    assert (result["pulled"], result["updates"], result["errors"]) == ([], [], [])
    assert result["skipped_services"] == [
        {"service": "local", "image": "stackops-lab:1", "reason": "built or imported on this host"}
    ]
    assert result["images"][2]["registry"] is False


def test_report_after_a_pull_lists_the_service_to_deploy() -> None:
    new = LocalImage(NEW_ID, (), ())
    # Two replicas, one already on the new image: the stale one is reported.
    result = plan_report(module.Fetch(True, NEW_DIGEST, NEW_ID), new, [NEW_ID, TINY_ID])
    app = result["images"][0]
    assert (app["container_image_id"], app["local_image_id"], app["remote_digest"]) == (TINY_ID, NEW_ID, NEW_DIGEST)
    assert (app["pulled"], app["update_available"]) == (True, True)
    assert (result["pulled"], result["updates"]) == ([REGISTRY_IMAGE], ["app"])


def test_report_of_a_predicted_pull_whose_image_id_is_unknown() -> None:
    result = plan_report(module.Fetch(True, NEW_DIGEST, None), PUSHED, [TINY_ID])
    assert result["updates"] == ["app"]
    assert result["images"][0]["local_image_id"] == TINY_ID  # check mode changes nothing


def test_report_of_a_local_rebuild_not_yet_deployed() -> None:
    # Nothing to pull, but the container runs an older build than the tag: a deploy is due.
    result = module.report(
        [module.Source("local", "stackops-lab:1", "", "built or imported")],
        {"local": [TINY_ID]},
        {"stackops-lab:1": imported()},
        {},
    )
    assert result["updates"] == ["local"]


def test_failed_pulls_name_the_image_and_its_services() -> None:
    result = plan_report(module.Fetch(False, None, None, "connection refused"), None, [])
    assert result["errors"] == [{"image": REGISTRY_IMAGE, "services": ["app", "worker"], "msg": "connection refused"}]
    message = module.failure(result["errors"])
    assert message.startswith(f"Pulling failed for 1 image(s): {REGISTRY_IMAGE} (service app, worker): connection")
    assert "fail_on_pull_error=false" in message
