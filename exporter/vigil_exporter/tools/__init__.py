"""Tools that work on a checkout of the Vigil repository, not on a running exporter.

Building the bundle and the dashboards, generating the reference docs and running the local
stack read and write the repository's own folders (prometheus/, alertmanager/, grafana/, deploy/,
docs/). They are never imported by `vigil serve`; each finds the checkout with
`vigil_exporter.tools.checkout.root()`.
"""
