"""synthetic_lesions: simulated breast-ultrasound lesions (radtl's offline default dataset).

Importing `synthetic_lesions_dataset_builder` registers the `synthetic_lesions` builder.
"""
