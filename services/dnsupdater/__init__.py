"""dnsupdater: split-horizon DNS that follows the gateways.

It keeps resolver records, the CoreDNS rewrite and ExternalDNS annotations in step with
Services, Gateways and HTTPRoutes. It touches only DNS backends and the annotations it owns.
"""
