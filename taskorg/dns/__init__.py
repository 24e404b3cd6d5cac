"""The DNS service: member registry, master lease arbiter, record publisher."""
