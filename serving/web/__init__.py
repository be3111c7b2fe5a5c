"""The collection teams' web page (`/`): server-rendered pages over the same snapshots, access rules and
functions as the API — risk lists, customer files, station benchmarking and the models in service."""
