"""Training through `transformers.Trainer`: the tiny bases' pre-training (pretrain), instruction tuning
of any base (trainer) and the launched processes of a sharded run (launch, worker). May import the layers
below (faco.core, faco.config, faco.models, faco.data).
"""
