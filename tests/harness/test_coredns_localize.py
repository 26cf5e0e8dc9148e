"""The CoreDNS harness changes only what running outside a pod needs, and the pins the tests
name are the ones the Go modules under testing/peers/ build."""

from __future__ import annotations

import re
from pathlib import Path

from tailwire.testing import coredns, peers

COREFILE = """\
.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
    }
    forward . /etc/resolv.conf
    reload
}
example.com:53 {
    hosts /etc/coredns/example.com.hosts example.com {
        ttl 60
        reload 1s
    }
    rewrite name regex (.*)\\.example\\.com gw.ns.svc.cluster.local answer auto
    kubernetes cluster.local
    reload
}
"""


def test_localize_changes_ports_kubeconfig_upstream_and_reload_interval_only() -> None:
    text = coredns.localize(
        COREFILE, port=5353, kubeconfig=Path("/k/admin"), resolv_conf=Path("/t/resolv.conf")
    )
    expected = """\
.:5353 {
    bind 127.0.0.1
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig /k/admin
       pods insecure
    }
    forward . /t/resolv.conf
    reload 2s 1s
}
example.com:5353 {
    bind 127.0.0.1
    hosts /etc/coredns/example.com.hosts example.com {
        ttl 60
        reload 1s
    }
    rewrite name regex (.*)\\.example\\.com gw.ns.svc.cluster.local answer auto
    kubernetes cluster.local {
        kubeconfig /k/admin
    }
    reload 2s 1s
}
"""
    assert text == expected


def test_project_swaps_the_data_link_like_the_kubelet(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    coredns.project(volume, {"Corefile": "one", "a.hosts": "x"})
    first = (volume / "..data").resolve()
    assert (volume / "Corefile").read_text() == "one"
    assert (volume / "a.hosts").is_symlink()
    coredns.project(volume, {"Corefile": "two"})
    assert (volume / "Corefile").read_text() == "two"
    assert not (volume / "a.hosts").exists()
    assert not first.exists()
    assert sorted(p.name for p in volume.iterdir() if not p.name.startswith("..")) == ["Corefile"]


def _required(module_dir: str) -> dict[str, str]:
    text = (peers.ROOT / "testing" / "peers" / module_dir / "go.mod").read_text()
    return dict(re.findall(r"^\s*(?:require\s+)?(\S+) (v\S+)$", text, re.MULTILINE))


def test_the_pinned_versions_are_the_go_modules() -> None:
    assert _required("coredns")["github.com/coredns/coredns"] == peers.COREDNS_VERSION
    required = _required("crds")
    for module, version in peers.CRD_MODULES.values():
        assert required[module] == version, module
