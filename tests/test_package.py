"""Tests for the package's top level (``jaxhpo/__init__.py``): what ``import jaxhpo`` loads."""

import subprocess
import sys


def test_import_loads_what_a_study_needs_and_the_rest_on_first_use():
    # population training and fusion (and Flax with them), scikit-learn and matplotlib load when first
    # used, so a Study's user does not wait for them at import
    code = (
        "import sys, jaxhpo\n"
        "heavy = ('flax', 'jaxhpo.population', 'jaxhpo.ensemble', 'jaxhpo.metrics', 'jaxhpo.hypergrad', "
        "'sklearn', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "jaxhpo.population.MLP, jaxhpo.ensemble.vote, jaxhpo.metrics.accuracy, jaxhpo.hypergrad\n"
        "print(sorted(m for m in heavy[:5] if m in sys.modules))\n"
        "from jaxhpo import *\n"
        "print(sorted(set(jaxhpo.__all__) - set(dir())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "['flax', 'jaxhpo.ensemble', 'jaxhpo.hypergrad', 'jaxhpo.metrics', 'jaxhpo.population']"
    assert out[2] == "[]"  # every public name, the lazy modules included
