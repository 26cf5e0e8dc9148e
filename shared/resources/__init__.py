"""Models of tailwire's custom resources, their validation, and the CRDs made from them.

`EgressGroup` (tailscale.rajsingh.info/v1alpha1) and `TailscaleGateway`/`TailscaleTailnet`
(gateway.tailscale.com/v1alpha1) accept the seed documents' manifests unchanged. Validation
names the field of every problem (`spec.routes[1]: ...`). Nothing here touches a cluster.
"""
