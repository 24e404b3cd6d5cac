"""Who may talk to a service: the cluster CA, node certificates, user tokens, the route policy, TLS."""
