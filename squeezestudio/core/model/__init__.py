"""What a model is: the handle every format loads into, its architecture spec, the zoo, inspection.

The lowest stage of the flow above the foundation modules (errors, progress,
atomic writes): nothing here knows about compression, data or files on disk
beyond the weight-free descriptions a handle carries.
"""
