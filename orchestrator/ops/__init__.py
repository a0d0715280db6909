"""Operating the service: the ``ocrserve`` command line (:mod:`.cli`), starting it on this machine
(:mod:`.local`), the KubeRay manifest generator (:mod:`.kuberay`) and the bundled Serve configs (``profiles/``).

Owns: what an operator or a developer runs by hand. May import every other part of the project; nothing imports
it back.
"""
