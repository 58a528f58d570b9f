"""Keras training-time metrics of radtl (registered for saving under the package "radtl").

Reported results come from `radtl.metrics` (scikit-learn's binary ROC AUC on the saved
predictions); these metrics only guide training (checkpoint choice, progress bars).
"""
import keras

__all__ = ["PositiveClassAUC", "MacroOneVsRestAUC", "auc_metric"]


@keras.saving.register_keras_serializable(package="radtl")
class PositiveClassAUC(keras.metrics.AUC):
    """ROC AUC of the positive class (index 1) for integer labels and (B, 2) probabilities.

    The anchors' `keras.metrics.AUC` on one-hot labels is a micro average over both
    columns; this metric scores only P(class 1), as the binary ROC AUC does.
    """

    def __init__(self, num_thresholds=1000, name="auc", **kwargs):
        super().__init__(num_thresholds=num_thresholds, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.reshape(y_true, (-1,))
        return super().update_state(y_true, y_pred[:, 1], sample_weight=sample_weight)


@keras.saving.register_keras_serializable(package="radtl")
class MacroOneVsRestAUC(keras.metrics.AUC):
    """Macro average over classes of the one-vs-rest ROC AUC, for integer labels."""

    def __init__(self, num_classes, num_thresholds=1000, name="auc", **kwargs):
        super().__init__(num_thresholds=num_thresholds, name=name, multi_label=True,
                         num_labels=num_classes, **kwargs)
        self.num_classes = num_classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), self.num_classes)
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        for key in ("multi_label", "num_labels", "label_weights"):
            config.pop(key, None)
        return {**config, "num_classes": self.num_classes}


def auc_metric(num_classes: int) -> keras.metrics.Metric:
    """`PositiveClassAUC` for 2 classes, else `MacroOneVsRestAUC`."""
    return PositiveClassAUC() if num_classes == 2 else MacroOneVsRestAUC(num_classes)
