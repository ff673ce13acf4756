"""Public tools outside the core, imported explicitly (``from sdkit.extras import compress``): robustness
(noise and FGSM accuracy), compress (pruning, int8 quantization, sizes) and tabular (scikit-learn's bundled tables
as sdkit Data)."""
