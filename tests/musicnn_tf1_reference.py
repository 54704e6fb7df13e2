"""Run musicnn's own TF1 graph on given input patches: the reference the port is tested against.

Usage: python tests/musicnn_tf1_reference.py PATCHES.npz OUT.npz MODEL [MODEL ...]

``PATCHES.npz`` holds ``patches`` (n, 187, 96) float32; ``OUT.npz`` gets ``<MODEL>__<output>``
for the taggram (sigmoid of the logits) and every layer musicnn's extractor exposes. Runs in its
own process because the TF1 graph needs eager execution disabled. Used by tests/test_pretrained.py.
"""

import os
import sys
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs Keras 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()
warnings.filterwarnings("ignore")  # tf.compat.v1.layers deprecation notices, one per layer

import musicnn  # noqa: E402
from musicnn import models  # noqa: E402  (not musicnn.extractor: it is not needed here)

MUSICNN_OUTPUTS = ("timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool",
                   "penultimate")
VGG_OUTPUTS = ("pool1", "pool2", "pool3", "pool4", "pool5")


def run(patches: np.ndarray, model: str) -> dict[str, np.ndarray]:
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, patches.shape[1], patches.shape[2]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, 50)
    names = ("taggram", *(VGG_OUTPUTS if "vgg" in model else MUSICNN_OUTPUTS))
    tensors = [tf.nn.sigmoid(outputs[0]), *outputs[1:]]
    folder = os.path.join(os.path.dirname(musicnn.__file__), model) + "/"
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, folder)
        values = sess.run(tensors, feed_dict={x: patches, is_training: False})
    return dict(zip(names, values))


def main() -> None:
    source, target, *names = sys.argv[1:]
    patches = np.load(source)["patches"].astype(np.float32)
    out = {}
    for model in names:
        for key, value in run(patches, model).items():
            out[f"{model}__{key}"] = np.asarray(value, dtype=np.float32)
    np.savez(target, **out)


if __name__ == "__main__":
    main()
