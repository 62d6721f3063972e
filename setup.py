"""ssnas_tf: self-supervised multimodal neural architecture search in Keras 3."""

import pathlib

from setuptools import find_packages, setup

here = pathlib.Path(__file__).parent
version = {}
exec((here / "ssnas_tf" / "version.py").read_text(), version)

setup(
    name="ssnas_tf",
    version=version["__version__"],
    description=("Self-supervised multimodal neural architecture search "
                 "(BM-NAS search space + SimCLR) in Keras 3 / TensorFlow"),
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ssnas_tf", "ssnas_tf.*"]),
    package_data={"ssnas_tf.data": ["*.npz"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        # [bayesian] brings scikit-learn + scipy for the surrogate search
        "keras-tuner[bayesian]>=1.4,<1.5",
        "tensorboard",
        "numpy",
        "h5py",
        # prepared (streamed) data: TFDS datasets in ArrayRecord shards;
        # etils' epath, which TFDS's builders use, needs importlib_resources
        "tensorflow-datasets>=4.9,<5",
        "array-record",
        "importlib_resources",
        "pillow",
        "scipy",  # the experiment statistics (t-intervals, Wilcoxon test)
        # every export writes TF Serving warm-up requests (PredictionLog protos)
        "tensorflow-serving-api>=2.21,<2.22",
    ],
    extras_require={
        # nbclient + ipykernel execute the notebooks in the slow tests;
        # tensorflow-text only for the test that the export refuses its ops;
        # matplotlib for the experiment figure; pytest-xdist runs the tests
        # in two processes (pytest.ini).
        "test": ["pytest>=7", "pytest-xdist>=3.5", "nbformat", "nbclient", "ipykernel",
                 "tensorflow-text>=2.21,<2.22", "matplotlib"],
        # a pandas DataFrame as data: Run(..., dataset=frame), ssnas_tf.as_dataset
        "pandas": ["pandas"],
        # the experiment figures (label_fraction.png/.svg)
        "plots": ["matplotlib"],
        # the documentation site: mkdocs build --strict (mkdocs.yml, docs/)
        "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10",
                 "mkdocstrings-python>=1.10"],
    },
    entry_points={"console_scripts": ["ssnas=ssnas_tf.cli:console_main"]},
)
