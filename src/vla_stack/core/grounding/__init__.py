"""Personalised grounding (Visual Attentive Prompting), ROS-free.

Find *my* object among look-alikes, follow it, highlight it and rewrite the instruction:

- `memory`      personal-object memory: reference crops, embeddings, category, aliases on disk
- `instruction` personal references in instructions ("my cup") and the highlight rewrite
- `proposals`   candidate objects: `depth_clusters` (Open3D, offline), `grounding_dino`, `owlv2`
- `embedders`   instance embeddings: `appearance` (offline), `dinov2`
- `matching`    cosine similarity to the references, ensemble vote, accept threshold, ambiguity
- `segmenters`  masks: `depth_refine` (offline), `sam2`
- `trackers`    mask tracking between detections: `optical_flow` (offline), `sam2`
- `prompting`   highlight overlay + rewritten instruction
- `target`      mask + depth -> centroid and top-down grasp (camera and base frame)
- `pipeline`    GroundingPipeline wiring the stages from GroundingConfig
- `scheduler`   GroundingScheduler: detection in a worker, tracking per frame, adoption by generation
                (the grounding node's threading and reporting rules)
- `learned`     the transformers backends (weights from local files only)
- `cli`         `vla-stack enroll` / `vla-stack eval-grounding`

Heavy dependencies (Open3D, OpenCV, torch/transformers, MuJoCo) are imported inside the
functions and backends that need them.
"""
