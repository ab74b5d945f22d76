"""Speed variants: what a benchmark may switch a twin to (``Twin.use_variant``), and the CUDA-graph
training engine. Nothing here changes a twin's math: the speed tests gate every variant's timing
on forward parity with its eager twin (suites/test_speed.py), and the checks run eager twins.

- ``variants``: each framework's variants (torch ``compile``, ``cudagraphs``, ``graph``,
  ``graph-nondeterministic``; Keras ``xla``) and the graph variant's epoch;
- ``torch_graph``: the whole training step captured in CUDA graphs.
"""
