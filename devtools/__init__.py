"""Tools for developing chatnet, run from a checkout and never installed:
real store and chatnet processes for the tests (`devtools.localservices`) and
a whole cluster on this machine (`devtools.devcluster`, ``scripts/run-cluster``).
They need the ``dev`` extra (``port-for``, ``secantusdb``, ``pymongo``)."""
