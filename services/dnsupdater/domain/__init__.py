"""Pure domain logic of the dnsupdater: frozen models and functions, no I/O, no framework.

- `exposures`: which Gateways are on the tailnet (their Tailscale LoadBalancer Service) and
  which route hostnames they serve;
- `records`: the desired record set of a zone, ownership markers, the difference to apply;
- `corefiles`: the CoreDNS resolver ConfigMap and the in-cluster rewrite block;
- `externaldns`: the ExternalDNS annotations tailwire manages on HTTPRoutes and Gateways.

Nothing here may import faststream, nats, kubernetes_asyncio, httpx, dnspython or
opentelemetry (import-linter enforces it).
"""
