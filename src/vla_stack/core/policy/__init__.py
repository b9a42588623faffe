"""The fast action expert (ROS-free).

- `types`: the `Policy` protocol (`infer(observation[, guidance]) -> ActionChunk`, `reset()`),
  the typed `Observation`, `Guidance` (real-time chunking constraint), `PolicyMetadata`.
- `backends`: `POLICIES` registry: `builtin` (the flow-matching expert trained here), `openpi`
  (remote openpi-protocol server); `backends.server.PolicyServer` serves a policy over that
  protocol (`vla-stack serve-policy`).
- `model` (torch, training) / `runtime` (numpy, inference): the flow-matching action-chunk
  transformer; `features`: observation features and action normalisation; `checkpoint`.
- `rtc`: real-time chunking guidance; `chunk_scheduler`: asynchronous execution strategies
  (rtc, sync, naive_async, temporal_ensemble); `realtime`: inference thread + scheduler for
  the node; `observation_builder`: inputs -> Observation with freshness checks.
- `serve_cli`: the `vla-stack serve-policy` entry point.

Training, demonstrations, the dataset and evaluation are the lab's: `vla_stack.lab.policy`.
"""
