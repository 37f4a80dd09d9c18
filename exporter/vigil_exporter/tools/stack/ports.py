"""The ports of the local stack's components, in a module of their own: `vigil stack --help`
names them without importing the stack's code."""

# The ports `vigil stack up` uses (the compose stack's host ports where it has one).
DEFAULT_PORTS = {
    "redis": 6379,
    "postgres": 5432,
    "exporter": 9477,
    "demo": 8080,
    "prometheus": 9090,
    "prometheus-2": 9091,
    "alertmanager": 9093,
    "alertmanager-cluster": 9094,
    "alertmanager-2": 9095,
    "alertmanager-2-cluster": 9096,
    "victoriametrics": 8428,
}
