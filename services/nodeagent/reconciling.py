"""The agent's work: apply a plan (read kernel -> domain diff -> write) and push gateway configs.

`Agent.apply_plan` runs the netlink work on a worker thread so the event loop stays free,
one plan at a time. Order: remove the links of pods that left a gateway, prepare each
gateway netns, then stitch each member; a failure on one pod is its own `PodResult` and
never stops the others. `Agent.apply_config` writes a gateway's config file and reloads
tailscaled through its LocalAPI, once per change. With `dry_run` nothing is written: the
changes are printed instead. Decisions live in `domain`; I/O lives in `adapters`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from tailwire.services.nodeagent.adapters import localapi, namespaces, netlink
from tailwire.services.nodeagent.domain import desiring, diffing, facts, gatewayfile
from tailwire.shared import cancelling, errors, ids
from tailwire.shared.events import gateways, nodes
from tailwire.shared.k8s import names

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    node: str
    link_ranges: tuple[str, ...] = ()
    proc_root: str = "/proc"
    netns_dir: str = namespaces.NETNS_DIR
    gateway_state_root: str = names.GATEWAY_STATE_ROOT
    dry_run: bool = False
    # How often every member's own netns is read back in full. In between, a member whose
    # desired state is unchanged since it was last applied is checked on the gateway side
    # only (its veth end, read with the gateway netns anyway): a burst of plans then costs
    # O(changed members), not O(all members) netns reads per plan.
    verify_interval: float = 60.0
    # Write the gateway netns's sysctls rather than only check them: for gateways in netns
    # that no gateway pod's init container prepared (settings.NodeSettings says when).
    write_sysctls: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Gateway:
    key: str
    netns: str | None
    pod_uid: str | None


class Agent:
    def __init__(
        self,
        *,
        options: Options,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.perf_counter,
        out: TextIO | None = None,
    ) -> None:
        self.options = options
        self.sleep = sleep
        self.clock = clock
        self.out = out or sys.stdout
        self.last_plan: nodes.NodePlan | None = None
        self.last_ack: nodes.NodeAck | None = None
        self._lock = asyncio.Lock()
        self._known_gateways: dict[str, _Gateway] = {}
        self._reloaded: dict[str, str] = {}  # group -> the renderer's hash tailscaled has
        self._written: dict[str, str] = {}  # group -> hash of this node's file tailscaled has
        self._inputs: dict[str, tuple[str, str | None]] = {}  # group -> (hash, hostname) done
        self._configs: dict[str, gateways.GatewayConfig] = {}  # group -> last config applied
        self._hostnames: dict[str, str] = {}  # group -> this node's gateway hostname (plan)
        self._exit: dict[str, gatewayfile.ExitNode] = {}  # group -> exit node as resolved
        self._routes: dict[str, tuple[str, ...]] = {}  # group -> routes it accepted
        self._reloads: dict[str, asyncio.Task[None]] = {}
        # Members applied successfully, as desired then (pod uid -> desired state).
        self._settled: dict[str, desiring.MemberDesired] = {}
        self._verified_at = -math.inf

    @property
    def needs_retry(self) -> bool:
        ack = self.last_ack
        return ack is not None and (
            any(not p.ok for p in ack.pods) or any(not g.ok for g in ack.gateways)
        )

    # --- plans ----------------------------------------------------------------------------

    async def apply_plan(self, plan: nodes.NodePlan) -> nodes.NodeAck:
        if plan.node != self.options.node:
            raise errors.MessageRejected(
                f"node: plan for {plan.node!r} reached the agent of {self.options.node!r}"
            )
        async with self._lock:
            self._hostnames = {g.group: g.hostname for g in plan.gateways if g.hostname}
            ack = await asyncio.to_thread(self._apply, plan)
            self.last_plan, self.last_ack = plan, ack
            return ack

    def stale_configs(self) -> list[gateways.GatewayConfig]:
        """Applied configs whose node copy the last plan changed (a new hostname)."""
        return [
            config
            for group, config in sorted(self._configs.items())
            if self._inputs.get(group, ("", None))[1] != self._hostnames.get(group)
        ]

    def gateway_result(
        self, group: str, *, ok: bool, error: str | None = None, config_hash: str | None = None
    ) -> nodes.GatewayResult:
        """An ack's word on group's gateway: its config, hostname and exit node."""
        exit_node = self._exit.get(group)
        wanted = exit_node is not None and exit_node.wanted
        return nodes.GatewayResult(
            group=ids.GroupName(group),
            ok=ok,
            error=error,
            config_hash=config_hash or self._reloaded.get(group, ""),
            hostname=self._hostnames.get(group),
            exit_node=(exit_node.describe() or None) if exit_node and wanted else None,
            exit_node_reason=(exit_node.reason or None) if exit_node and wanted else None,
            exit_node_message=(exit_node.message or None) if exit_node and wanted else None,
            tailnet_routes=self._routes.get(group, ()),
        )

    def _emit(self, session: netlink.Session, changes: list[facts.Change]) -> None:
        for change in changes:
            if self.options.dry_run:
                print(change.describe(), file=self.out)
            else:
                session.apply(change)

    def _resolve(
        self, session: netlink.Session, *, key: str, netns: str | None, pod_uid: str | None
    ) -> None:
        if key not in session.paths:
            path = namespaces.resolve(
                netns=netns,
                pod_uid=pod_uid,
                proc_root=self.options.proc_root,
                netns_dir=self.options.netns_dir,
            )
            session.bind(key, path)

    def _apply(self, plan: nodes.NodePlan) -> nodes.NodeAck:
        started = self.clock()
        full = self.options.dry_run or started - self._verified_at >= self.options.verify_interval
        desired = desiring.desire(plan, link_ranges=self.options.link_ranges)
        gw_results: dict[str, nodes.GatewayResult] = {}
        pods: list[nodes.PodResult] = []
        with netlink.Session() as session:
            current = {
                g.netns: _Gateway(
                    key=g.netns, netns=g.netns if g.named else None, pod_uid=g.pod_uid
                )
                for g in desired.gateways
            }
            states: dict[str, facts.NamespaceState] = {}
            errors_by_key: dict[str, str] = {}
            for gw in {**self._known_gateways, **current}.values():
                try:
                    self._resolve(session, key=gw.key, netns=gw.netns, pod_uid=gw.pod_uid)
                    states[gw.key] = session.read(gw.key, gateway=gw.key in current)
                except errors.TailwireError as exc:
                    errors_by_key[gw.key] = str(exc)
            removed = self._remove_departed(
                session, desired=desired, states=states, current=set(current)
            )
            for gw_desired in desired.gateways:
                gw_results[gw_desired.group] = self._apply_gateway(
                    session, gw_desired, states=states, failures=errors_by_key
                )
            for member in desired.members:
                pods.append(
                    self._apply_member(
                        session, member, states=states, failures=errors_by_key, full=full
                    )
                )
            writes = session.writes
        self._known_gateways = current
        ok = {p.pod_uid for p in pods if p.ok}
        self._settled = {m.pod_uid: m for m in desired.members if m.pod_uid in ok}
        if full:
            self._verified_at = started
        return nodes.NodeAck(
            node=ids.NodeName(self.options.node),
            generation=plan.generation,
            duration_ms=(self.clock() - started) * 1000,
            pods=tuple(pods),
            gateways=tuple(gw_results.values()),
            removed=tuple(removed),
            netlink_writes=writes,
        )

    def _remove_departed(
        self,
        session: netlink.Session,
        *,
        desired: desiring.Desired,
        states: dict[str, facts.NamespaceState],
        current: set[str],
    ) -> list[ids.PodUID]:
        in_plan = {m.pod_uid for m in desired.members}
        removed: list[ids.PodUID] = []
        for key, state in list(states.items()):
            keep = {m.pod_uid for m in desired.members if m.gateway_netns == key}
            stale = diffing.stale_links(state, keep=keep)
            for link, uid, named in stale:
                member_key = member_state = None
                if uid not in in_plan:
                    member_key = desiring.netns_key(netns=named, pod_uid=uid)
                    try:
                        self._resolve(session, key=member_key, netns=named, pod_uid=uid)
                        member_state = session.read(member_key)
                    except errors.TailwireError:
                        member_key = member_state = None  # the pod and its netns are gone
                changes = diffing.diff_removal(
                    gateway_netns=key, link=link, member_netns=member_key, member=member_state
                )
                try:
                    self._emit(session, changes)
                except errors.TailwireError as exc:
                    log.warning("removing the link of pod %s failed: %s", uid, exc)
                    continue
                if uid not in in_plan:
                    removed.append(ids.PodUID(uid))
            if stale and not self.options.dry_run:
                states[key] = session.read(key, gateway=key in current)
        return removed

    def _apply_gateway(
        self,
        session: netlink.Session,
        desired: desiring.GatewayDesired,
        *,
        states: dict[str, facts.NamespaceState],
        failures: dict[str, str],
    ) -> nodes.GatewayResult:
        if desired.netns not in states:
            reason = failures.get(desired.netns, "netns unavailable")
            return self.gateway_result(desired.group, ok=False, error=reason)
        state = states[desired.netns]
        write = self.options.write_sysctls
        try:
            self._emit(session, diffing.diff_gateway(desired, state, write_sysctls=write))
        except errors.TailwireError as exc:
            return self.gateway_result(desired.group, ok=False, error=str(exc))
        wrong = None if write else diffing.sysctl_error(desired, state)
        if wrong is not None:
            return self.gateway_result(desired.group, ok=False, error=wrong)
        return self.gateway_result(desired.group, ok=True)

    def _apply_member(
        self,
        session: netlink.Session,
        desired: desiring.MemberDesired,
        *,
        states: dict[str, facts.NamespaceState],
        failures: dict[str, str],
        full: bool,
    ) -> nodes.PodResult:
        started, writes = self.clock(), session.writes
        uid = ids.PodUID(desired.pod_uid)
        if not full and self._unchanged(desired, states=states):
            return nodes.PodResult(
                pod_uid=uid, ok=True, duration_ms=(self.clock() - started) * 1000, writes=0
            )
        try:
            if desired.refused is not None:
                raise errors.DatapathError(desired.refused)
            gw_key = desired.gateway_netns
            if gw_key is None or gw_key not in states:
                reason = failures.get(gw_key or "", "netns unavailable")
                raise errors.DatapathError(f"gateway of group {desired.group!r}: {reason}")
            self._resolve(
                session,
                key=desired.netns,
                netns=desired.netns if desired.named else None,
                pod_uid=desired.pod_uid,
            )
            member_state = session.read(desired.netns)
            if diffing.reads_member_table(desired, member_state):
                digest = session.nft_digest(desired.netns)
                member_state = dataclasses.replace(member_state, nft_digest=digest)
            changes = diffing.diff_member(desired, gateway=states[gw_key], member=member_state)
            self._emit(session, changes)
        except errors.TailwireError as exc:
            session.release(desired.netns)
            return nodes.PodResult(
                pod_uid=uid,
                ok=False,
                error=str(exc),
                duration_ms=(self.clock() - started) * 1000,
                writes=session.writes - writes,
            )
        session.release(desired.netns)
        return nodes.PodResult(
            pod_uid=uid,
            ok=True,
            duration_ms=(self.clock() - started) * 1000,
            writes=session.writes - writes,
        )

    def _unchanged(
        self, desired: desiring.MemberDesired, *, states: dict[str, facts.NamespaceState]
    ) -> bool:
        """Applied as desired before, and its gateway end is still there as it should be."""
        if self._settled.get(desired.pod_uid) != desired or desired.gateway_netns is None:
            return False
        gateway = states.get(desired.gateway_netns)
        link = gateway.links.get(desired.link) if gateway is not None else None
        return link is not None and link.up and link.mtu == desired.mtu

    # --- gateway configs ------------------------------------------------------------------

    def config_dir(self, config: gateways.GatewayConfig) -> Path:
        return Path(
            names.gateway_state_dir(
                group=config.group, tailnet=config.tailnet, root=self.options.gateway_state_root
            )
        )

    async def apply_config(self, config: gateways.GatewayConfig, *, refresh: bool = False) -> int:
        """Write this node's copy of the config and reload tailscaled if the copy changed;
        returns the reload calls. `refresh`: resolve the exit node again even if nothing
        else changed (the gateway's peers may have)."""
        if gateways.config_hash(config.config) != config.hash:
            raise errors.MessageRejected(
                f"hash: {config.hash!r} does not match the config of group {config.group!r}"
            )
        group = config.group
        hostname = self._hostnames.get(group)
        if not refresh and self._inputs.get(group) == (config.hash, hostname):
            return 0
        directory = self.config_dir(config)
        config_file = directory / names.GATEWAY_CONFIG_FILE
        socket = directory / names.GATEWAY_SOCKET_FILE
        self._configs[group] = config
        target = str(config.config.get("exitNode") or "")
        peers = None
        follows = bool(target) or config.config.get("acceptRoutes") is True
        if follows and not self.options.dry_run and socket.exists():
            try:
                peers = gatewayfile.peers_from_status(await localapi.status(socket))
            except errors.TransientBackendError as exc:
                log.info("gateway %s: no peers to resolve the exit node with: %s", group, exc)
        exit_node = gatewayfile.resolve_exit_node(target, peers)
        if exit_node.reason and exit_node != self._exit.get(group):
            log.warning("gateway %s: %s", group, exit_node.message)
        self._exit[group] = exit_node
        if peers is not None or config.config.get("acceptRoutes") is not True:
            self._routes[group] = gatewayfile.accepted_routes(config.config, peers)
        local = gatewayfile.localize(config.config, hostname=hostname, exit_node=exit_node)
        local_hash = gateways.config_hash(local)
        self._inputs[group] = (config.hash, hostname)
        if self._written.get(group) == local_hash:
            self._reloaded[group] = config.hash
            return 0
        if self.options.dry_run:
            print(
                f"write {config_file} ({config.hash}); POST {localapi.RELOAD_PATH} via {socket}",
                file=self.out,
            )
            return 0
        changed = await asyncio.to_thread(localapi.write_config, config_file, local)
        if not changed and group not in self._written:
            # A restarted agent finds the file already current: tailscaled has it.
            self._written[group], self._reloaded[group] = local_hash, config.hash
            return 0
        if not socket.exists():
            log.info("gateway %s is not running yet; it reads %s at start", group, config_file)
            self._written[group], self._reloaded[group] = local_hash, config.hash
            return 0
        calls = await localapi.reload(socket, sleep=self.sleep)
        self._written[group], self._reloaded[group] = local_hash, config.hash
        log.info("gateway %s reloaded config %s (node copy %s)", group, config.hash, local_hash)
        return calls

    async def refresh_exit_nodes(self) -> list[str]:
        """Read every gateway that follows its peers (an exit node to resolve, routes to
        accept) again; the groups whose exit node or accepted routes changed."""
        changed = []
        for group, config in sorted(self._configs.items()):
            if not (config.config.get("exitNode") or config.config.get("acceptRoutes") is True):
                continue
            before = (self._exit.get(group), self._routes.get(group))
            try:
                await self.apply_config(config, refresh=True)
            except (errors.TailwireError, OSError) as exc:
                log.warning("gateway %s: refreshing its exit node failed: %s", group, exc)
                continue
            if (self._exit.get(group), self._routes.get(group)) != before:
                changed.append(group)
        return changed

    def apply_config_soon(
        self,
        config: gateways.GatewayConfig,
        *,
        then: Callable[[gateways.GatewayConfig], Awaitable[None]] | None = None,
    ) -> asyncio.Task[None]:
        """Apply in the background; a newer config of the same group supersedes an older one.

        `then` runs after the config is in place (the handlers re-state the ack with it).
        """
        previous = self._reloads.pop(config.group, None)
        if previous is not None and not previous.done():
            previous.cancel()

        async def run() -> None:
            try:
                await self.apply_config(config)
            except (errors.TailwireError, OSError) as exc:
                log.error("gateway %s config %s not applied: %s", config.group, config.hash, exc)
                return
            if then is not None:
                try:
                    await then(config)
                except errors.TailwireError as exc:
                    log.warning("after gateway %s config %s: %s", config.group, config.hash, exc)

        task = asyncio.create_task(run(), name=f"tailwire-gateway-config-{config.group}")
        self._reloads[config.group] = task
        return task

    async def close(self) -> None:
        await cancelling.cancel_and_wait(self._reloads.values())
        self._reloads.clear()
