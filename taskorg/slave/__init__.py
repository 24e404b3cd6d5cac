"""The slave service: runs task containers on this node and reports them to the master."""
