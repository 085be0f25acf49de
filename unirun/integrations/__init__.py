"""unirun inside distributed engines: :mod:`unirun.integrations.ray` (Ray Data batch inference,
extra ``unirun[ray]``) and :mod:`unirun.integrations.ray_serve` (Open Inference Protocol
serving on Ray Serve replicas, extra ``unirun[ray-serve]``). Importing this package imports
neither Ray nor any web framework; each submodule imports its engine when imported."""
