/* manifest_schema.h: the shape of a manifest, private to libcommon. */
#ifndef MANIFEST_SCHEMA_H
#define MANIFEST_SCHEMA_H

enum key_kind {
	K_MAP,       /* mapping with known keys (children) */
	K_STR,       /* string (a plain integer is accepted and kept as text) */
	K_INT,       /* integer within [min, max] */
	K_NUM,       /* integer or real within [min, max] */
	K_BOOL,      /* true or false */
	K_ENUM,      /* one string of values */
	K_STRLIST,   /* list of strings */
	K_KEYLIST,   /* a string or a list of strings, normalised to a list */
	K_SCALARMAP, /* free mapping of names to scalars, normalised to strings */
	K_MAPLIST    /* list of mappings with known keys (children) */
};

enum key_flags {
	REQUIRED = 1,
	AUTO = 2 /* K_MAP: created empty when absent, so its defaults apply */
};

struct key {
	const char *name;
	enum key_kind kind;
	int flags;
	const char *dflt;           /* default, spelled as in YAML */
	const struct key *children; /* K_MAP, K_MAPLIST; ends with name NULL */
	const char *const *values;  /* K_ENUM; ends with NULL */
	double min, max;            /* K_INT, K_NUM; both 0 = unbounded */
};

extern const struct key manifest_schema[];
/* The values of the enumerations in dpone.h, in enum order, NULL-ended. */
extern const char *const dp_strategy_names[],
	*const dp_delivery_mode_names[], *const dp_quality_mode_names[],
						 *const dp_state_type_names[],
							 *const dp_export_mode_names[],
								 *const dp_bigint_mode_names[],
									 *const dp_binary_mode_names[],
										 *const dp_breaking_policy_names[],
											 *const dp_check_type_names[];

#endif
