"""Running one command in a hardened, network-less container: engine connection, labels, sweeps."""
