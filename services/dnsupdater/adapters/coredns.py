"""CoreDNS through ConfigMaps: the tailnet resolver's hosts data and the in-cluster rewrite.

- `ResolverBackend` is a zone backend: each zone's records are the `<zone>.hosts` key of
  tailwire's resolver ConfigMap; its Corefile (hosts, file, reload) and each zone's SOA
  (`<zone>.soa`) are kept by `ensure`.
- `RewriteBlock` keeps tailwire's block in the user's CoreDNS ConfigMap and leaves the rest
  of their Corefile untouched.

Both write only when the content differs. Must not decide the content: the domain renders it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tailwire.services.dnsupdater.adapters import kube
from tailwire.services.dnsupdater.domain import corefiles, records
from tailwire.shared import errors
from tailwire.shared.events import dns as dns_events

log = logging.getLogger(__name__)
NAME = "coredns"


class ResolverBackend:
    name = NAME
    owner_markers = False  # tailwire owns the whole ConfigMap
    wildcards = False  # the hosts plugin has no wildcards

    def __init__(
        self,
        *,
        writer: kube.KubeWriter,
        namespace: str,
        configmap: str,
        zones: Sequence[tuple[str, int]],
        mount_path: str = "/etc/coredns",
    ) -> None:
        self.writer = writer
        self.namespace = namespace
        self.configmap = configmap
        self.ttls = dict(zones)
        self.corefile = corefiles.render_resolver_corefile(zones=zones, mount_path=mount_path)
        # What the Corefile serves besides the hosts files: it and each zone's SOA.
        self.static = {
            corefiles.COREFILE_KEY: self.corefile,
            **{
                corefiles.soa_key(zone): corefiles.render_soa_zone(zone=zone, ttl=ttl)
                for zone, ttl in zones
            },
        }

    async def read(self, zone: str) -> frozenset[dns_events.Record]:
        data = await self.writer.read_configmap(namespace=self.namespace, name=self.configmap)
        text = (data or {}).get(corefiles.hosts_key(zone), "")
        return corefiles.parse_hosts(text, ttl=self.ttls.get(zone, 60))

    async def apply(
        self,
        zone: str,
        *,
        change: records.Change,
        desired: frozenset[dns_events.Record],
    ) -> None:
        del change  # the hosts file is rewritten whole
        await self.writer.write_configmap(
            namespace=self.namespace,
            name=self.configmap,
            data={
                corefiles.hosts_key(zone): corefiles.render_hosts(zone=zone, records=desired),
                **self.static,
            },
            create=True,
        )

    async def ensure(self) -> bool:
        """Write the resolver's Corefile and SOAs if they differ; True if it wrote."""
        data = await self.writer.read_configmap(namespace=self.namespace, name=self.configmap)
        if data is not None and all(data.get(k) == v for k, v in self.static.items()):
            return False
        await self.writer.write_configmap(
            namespace=self.namespace,
            name=self.configmap,
            data=self.static,
            create=True,
        )
        log.info("resolver Corefile written to %s/%s", self.namespace, self.configmap)
        return True


class RewriteBlock:
    """tailwire's server blocks inside the user's CoreDNS Corefile."""

    name = "coredns-rewrite"

    def __init__(
        self,
        *,
        writer: kube.KubeWriter,
        namespace: str,
        configmap: str,
        block: str,
        key: str = corefiles.COREFILE_KEY,
    ) -> None:
        self.writer = writer
        self.namespace = namespace
        self.configmap = configmap
        self.block = block
        self.key = key

    async def ensure(self) -> bool:
        data = await self.writer.read_configmap(namespace=self.namespace, name=self.configmap)
        if data is None:
            raise errors.NotFound(
                f"coredns_configmap: {self.namespace}/{self.configmap} does not exist"
            )
        current = data.get(self.key, "")
        merged = corefiles.merge_corefile(current, block=self.block)
        if merged == current:
            return False
        await self.writer.write_configmap(
            namespace=self.namespace, name=self.configmap, data={self.key: merged}, create=False
        )
        log.info("rewrite block written to %s/%s", self.namespace, self.configmap)
        return True
