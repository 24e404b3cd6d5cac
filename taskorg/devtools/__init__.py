"""Development and test tooling, apart from the product: the local cluster
(`taskorg cluster up`) and the locally built task image. Nothing a
provisioned node runs imports from here."""
