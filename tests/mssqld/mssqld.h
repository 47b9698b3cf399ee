/*
 * mssqld.h: a TDS 7.4 SQL Server stand-in over SQLite, for dpone's tests.
 *
 * Pieces: main.c (listener, threads, control port, faults), tds.c (packets,
 * tokens, wire values), login.c (PRELOGIN, LOGIN7), types.c (SQL Server
 * types, their SQLite storage and wire forms), lex.c + parse.c (a T-SQL
 * subset into an AST), exec.c (statements, run through SQLite), catalog.c
 * (tables, columns, INFORMATION_SCHEMA and sys views), cdc.c (change data
 * capture as SQL Server exposes it).
 *
 * Ownership: functions named *_new return memory the caller frees with the
 * matching *_free; `const` results are borrowed.
 */
#ifndef MSSQLD_H
#define MSSQLD_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* ---- SQL Server types (types.c) ---- */
enum tbase {
	T_NULL,
	T_BIT,
	T_TINYINT,
	T_SMALLINT,
	T_INT,
	T_BIGINT,
	T_DECIMAL,
	T_NUMERIC,
	T_MONEY,
	T_SMALLMONEY,
	T_REAL,
	T_FLOAT,
	T_DATE,
	T_TIME,
	T_SMALLDATETIME,
	T_DATETIME,
	T_DATETIME2,
	T_DATETIMEOFFSET,
	T_CHAR,
	T_VARCHAR,
	T_NCHAR,
	T_NVARCHAR,
	T_BINARY,
	T_VARBINARY,
	T_UNIQUEIDENTIFIER,
	T_ROWVERSION
};

struct stype {
	enum tbase base;
	int len;   /* char/binary length in characters or bytes; -1 = max */
	int prec;  /* decimal precision */
	int scale; /* decimal scale, or fractional digits of time types */
};

/* A value between storage, literals and the wire. */
enum vkind { V_NULL, V_INT, V_REAL, V_DEC, V_TEXT, V_BLOB, V_TIME };
struct value {
	enum vkind kind;
	long long i;
	double r;
	int neg;                /* V_DEC: sign */
	unsigned __int128 mag;  /* V_DEC: magnitude, scaled by 10^scale */
	int scale;              /* V_DEC */
	char *text;             /* V_TEXT: UTF-8, owned */
	unsigned char *blob;    /* V_BLOB: owned */
	size_t len;             /* V_TEXT / V_BLOB length */
	int has_date, has_time; /* V_TIME parts present */
	int days;               /* V_TIME: days since 0001-01-01 */
	long long ticks;        /* V_TIME: 100 ns units since midnight */
	int offset;             /* V_TIME: minutes east of UTC (local = UTC + offset) */
	int has_offset;
};

/* An error in SQL Server's terms: number, class, message. */
struct sqlerr {
	int number;
	int cls;
	int state;
	char msg[512];
};

int type_from_name(const char *name, int nargs, const long *args, struct stype *t);
void type_format(const struct stype *t, char *buf, size_t len);
int type_parse_text(const char *text, struct stype *t);
int type_is_char(enum tbase b);
int type_is_unicode(enum tbase b);
int type_is_binary(enum tbase b);
int type_is_numeric(enum tbase b);
int type_is_temporal(enum tbase b);
int type_max_bytes(const struct stype *t);

void value_clear(struct value *v);
/* Read a storage value of type t into v. */
int value_from_storage(sqlite3_value *sv, const struct stype *t, struct value *v, struct sqlerr *e);
/* Convert v (of type from, or a literal when from is NULL) to type to and
 * give the SQLite storage form through sqlite3_result_* / bind. */
int value_convert(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e);
void value_result(sqlite3_context *ctx, const struct value *v, const struct stype *t);
int value_bind(sqlite3_stmt *st, int idx, const struct value *v, const struct stype *t);
/* Text form for CONVERT(varchar, ...) and messages; style as CONVERT's. */
char *value_to_text(const struct value *v, const struct stype *t, int style);
/* A typed literal value from SQL text ("12.5", N'x', 0x01, ...). */
int literal_type(const struct value *v, struct stype *t);

/* Register tds_conv, the TSQL collation and the server functions on db. */
void types_register(sqlite3 *db);

/* UTF-8 <-> UTF-16LE and CP1252 (the code page of the default collation). */
size_t utf8_to_utf16(const char *s, size_t n, unsigned char *out);
char *utf16_to_utf8(const unsigned char *p, size_t nbytes, size_t *outlen);
size_t utf8_to_cp1252(const char *s, size_t n, unsigned char *out);
char *cp1252_to_utf8(const unsigned char *p, size_t n, size_t *outlen);
/* Does the UTF-8 text survive a round trip through CP1252? Replace what
 * does not with '?', as storing into varchar does. */
char *utf8_fit_cp1252(const char *s, size_t n, size_t *outlen);

/* ---- TDS protocol (tds.c) ---- */
#define TDS_PKT_SQL_BATCH 0x01
#define TDS_PKT_RPC 0x03
#define TDS_PKT_REPLY 0x04
#define TDS_PKT_ATTENTION 0x06
#define TDS_PKT_BULK 0x07
#define TDS_PKT_LOGIN7 0x10
#define TDS_PKT_PRELOGIN 0x12

#define DONE_MORE 0x01
#define DONE_ERROR 0x02
#define DONE_COUNT 0x10
#define DONE_ATTN 0x20

struct conn;

struct outbuf {
	unsigned char *p;
	size_t len, cap;
};
void ob_byte(struct outbuf *b, unsigned v);
void ob_u16(struct outbuf *b, unsigned v);
void ob_u32(struct outbuf *b, uint32_t v);
void ob_u64(struct outbuf *b, uint64_t v);
void ob_bytes(struct outbuf *b, const void *p, size_t n);
void ob_bvarchar(struct outbuf *b, const char *utf8);  /* 1-byte length, UCS-2 */
void ob_usvarchar(struct outbuf *b, const char *utf8); /* 2-byte length, UCS-2 */

/* Read one whole message (all packets up to EOM); type in *type. -1 on EOF. */
int tds_read_message(struct conn *c, unsigned char *type, unsigned char **data, size_t *len);
/* Queue token bytes; full packets go out as they fill. */
void tds_put(struct conn *c, const void *p, size_t n);
int tds_flush(struct conn *c, int eom);
/* An attention packet arrived while results were being sent. */
int tds_attention_pending(struct conn *c);

void tok_done(struct conn *c, unsigned token, unsigned status, unsigned curcmd, uint64_t rows);
void tok_error(struct conn *c, const struct sqlerr *e);
void tok_info(struct conn *c, int number, const char *msg);
void tok_envchange_str(struct conn *c, int type, const char *newv, const char *oldv);
void tok_envchange_collation(struct conn *c);
void tok_loginack(struct conn *c);
/* RETURNSTATUS 0 and the DONEPROC that ends an RPC. */
void tok_rpc_end(struct conn *c, int failed);

/* One column of a result set. */
struct rcol {
	char name[256];
	struct stype type;
	int nullable;
	int identity;
};
void tok_colmetadata(struct conn *c, const struct rcol *cols, int ncols);
/* A ROW (or NBCROW when many NULLs) from the storage values of a statement. */
int tok_row(struct conn *c, const struct rcol *cols, int ncols, sqlite3_stmt *st, int first_col, struct sqlerr *e);
/* Parse a TYPE_INFO at *p (RPC parameters, bulk load); 0 or -1. */
int wire_read_typeinfo(const unsigned char **p, const unsigned char *end, struct stype *t, int *plp);
/* Read one value of type t into v; 0 or -1. */
int wire_read_value(const unsigned char **p, const unsigned char *end, const struct stype *t, int plp, struct value *v);

/* ---- SQL (lex.c, parse.c) ---- */
enum tok_kind {
	TK_EOF,
	TK_IDENT,
	TK_QIDENT,
	TK_VAR,
	TK_STRING,
	TK_NSTRING,
	TK_INT,
	TK_DEC,
	TK_FLOAT,
	TK_BINARY,
	TK_OP
};
struct token {
	enum tok_kind kind;
	char *text; /* identifier (unquoted), string contents, number text, operator */
	int line;
	int pos; /* byte offset in the batch */
};
struct lexer {
	struct token *toks;
	int n, cap, at;
};
int lex_batch(const char *sql, struct lexer *lx, struct sqlerr *e);
void lex_free(struct lexer *lx);

enum ekind {
	E_LIT,
	E_COL,
	E_VAR,
	E_GLOBAL,
	E_FUNC,
	E_UNARY,
	E_BINARY,
	E_ISNULL,
	E_IN,
	E_BETWEEN,
	E_CAST,
	E_STAR,
	E_CASE
};
struct expr {
	enum ekind kind;
	char *name;         /* E_COL column, E_VAR/E_GLOBAL name, E_FUNC name (dotted), E_UNARY/E_BINARY operator */
	char *qual;         /* E_COL table qualifier */
	struct value lit;   /* E_LIT */
	struct stype type;  /* E_CAST target; E_LIT literal type */
	int negate;         /* IS NOT NULL, NOT IN, NOT BETWEEN */
	int style;          /* CONVERT style, -1 if none */
	struct expr **args; /* operands / arguments / IN list */
	int nargs;
	int star; /* COUNT(*) */
};

struct select_item {
	struct expr *e;
	char *alias;
	char *assign_var; /* SELECT @v = expr */
};
struct order_item {
	struct expr *e;
	int desc;
};
struct tableref {
	char *db, *schema, *name;
	struct expr **args; /* table-valued function arguments */
	int nargs;
	int is_func;
	char *alias;
};
struct coldef {
	char *name;
	struct stype type;
	int not_null;
	int nullable_given;
	int primary_key;
	int identity;
	long long seed, step;
	struct expr *dflt;
};

enum skind {
	S_SELECT,
	S_INSERT,
	S_UPDATE,
	S_DELETE,
	S_CREATE_TABLE,
	S_CREATE_SCHEMA,
	S_CREATE_INDEX,
	S_DROP_TABLE,
	S_ALTER_ADD,
	S_ALTER_COLUMN,
	S_ALTER_DROP,
	S_DECLARE,
	S_SET_VAR,
	S_SET_OPTION,
	S_USE,
	S_EXEC,
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_TRUNCATE,
	S_IF,
	S_INSERT_BULK
};
struct stmt {
	enum skind kind;
	int line;
	/* SELECT */
	struct select_item *items;
	int nitems;
	int top; /* -1 none */
	struct tableref from;
	int has_from;
	struct expr *where;
	struct order_item *order;
	int norder;
	/* INSERT / UPDATE */
	char **cols;
	int ncols;
	struct expr ***rows; /* INSERT VALUES rows */
	int nrows;
	struct expr **set_vals; /* UPDATE: cols[i] = set_vals[i] */
	/* CREATE / ALTER */
	struct coldef *defs;
	int ndefs;
	char **pk; /* table-level PRIMARY KEY */
	int npk;
	char *pk_name;
	int if_exists;
	int unique; /* CREATE UNIQUE INDEX */
	/* DECLARE / SET @v / SET option / USE / EXEC */
	char **vars;
	struct stype *var_types;
	struct expr **var_vals;
	int nvars;
	char *name;         /* option, database, procedure */
	struct expr **args; /* EXEC arguments (positional or named) */
	char **arg_names;
	int nargs;
	/* IF cond stmt */
	struct expr *cond;
	struct stmt *then_stmt;
};
struct batch {
	struct stmt *stmts;
	int n;
};
int parse_batch(const char *sql, struct batch *b, struct sqlerr *e);
void batch_free(struct batch *b);
void expr_free(struct expr *x);

/* ---- catalog types (catalog.c) ---- */
struct column_info {
	char name[129];
	struct stype type;
	int nullable;
	int identity;
	int ordinal;
	int pk_ordinal; /* 0 if not in the primary key */
	char dflt[256];
};
struct table_info {
	long long object_id;
	char schema[129];
	char name[129];
	struct column_info *cols;
	int ncols;
	int is_view;
	int cdc; /* a capture instance exists */
	char capture_instance[260];
	long long ident_next, ident_step;
};
/* ---- execution (exec.c) ---- */
struct variable {
	char name[130];
	struct stype type;
	struct value v;
};

/* One row an open transaction inserted: its INSERT and its values (owned). */
struct held_row {
	char *sql;
	struct value *vals;
	struct stype *types;
	int n;
	char schema[129], name[129]; /* the table, for errors */
};

/* A statement sp_prepare or sp_prepexec prepared, until sp_unprepare. */
struct prepared {
	int handle;
	char *decl, *sql; /* owned; decl may be "" */
};

struct conn {
	int fd;
	struct ssl_st *tls;     /* TLS on the socket, or NULL */
	int encrypt_all;        /* the session stays encrypted after LOGIN7 */
	int encrypted;          /* LOGIN7 came over TLS (sys.dm_exec_connections) */
	unsigned char out_type; /* the type of the packets being sent (REPLY; PRELOGIN in the TLS handshake) */
	int spid;
	sqlite3 *db;
	char database[129];
	char user[129];
	size_t packet_size;
	uint32_t tds_version; /* as the client sent it in LOGIN7 */
	/* output packet being filled */
	unsigned char *out;
	size_t out_len;  /* bytes of whole packets in out */
	size_t out_fill; /* payload bytes in the packet being filled */
	unsigned char out_packet_id;
	int out_broken;
	/* input */
	unsigned char *in;
	size_t in_len, in_cap;
	int attention; /* an ATTENTION packet was seen */
	/* batch state */
	struct variable *vars;
	int nvars;
	int in_tran;
	/* An explicit transaction's INSERTs wait here until it commits (txn.c);
	 * tran_locked: it took SQLite's write lock (an UPDATE, DELETE or DDL),
	 * and what it held went in then. */
	struct held_row *held;
	int nheld, held_cap;
	int tran_locked;
	int read_only_intent; /* LOGIN7 TypeFlags fReadOnlyIntent: an AG secondary's session */
	int fmtonly;
	int nocount;
	long long textsize; /* SET TEXTSIZE: (max) values are cut to it; 0: no limit */
	long long rowcount;
	/* change data capture: the LSN of the open transaction */
	unsigned char cur_lsn[10];
	int have_lsn;
	uint64_t last_seq;
	/* RPC and bulk load */
	int in_rpc;
	int rpc_handle_out;        /* sp_prepare/sp_prepexec: the handle to return (RETURNVALUE), or -1 */
	struct prepared *prepared; /* sp_prepare'd statements, owned */
	int nprepared;
	int next_handle;
	struct table_info bulk_table;
	int bulk_ready;
	struct outbuf rowbuf; /* one ROW token at a time */
	/* The DONE of the last statement, held back: only the batch's last
	 * DONE goes out without the MORE bit. */
	struct {
		int valid;
		unsigned status, curcmd;
		uint64_t rows;
	} pending;
};

int exec_batch(struct conn *c, const char *sql);
/* The end of a session: an open transaction and what it held go. */
void exec_session_end(struct conn *c);
int exec_rpc(struct conn *c, const unsigned char *p, size_t len);
/* The end of a session: its prepared statements go. */
void rpc_session_end(struct conn *c);
/* ---- TLS (tls.c) ---- */
enum { ENCRYPT_OFF = 0, ENCRYPT_ON = 1, ENCRYPT_NOT_SUP = 2, ENCRYPT_REQ = 3 };
int tls_init(const char *cert, const char *key, int force_encryption);
void tls_set_force(int on);
int tls_available(void);
/* The PRELOGIN ENCRYPTION answer to the client's value. */
int tls_answer(int client);
/* The handshake, inside PRELOGIN packets; then c->tls is on the socket. */
int tls_handshake(struct conn *c);
void tls_end(struct conn *c);
int tls_read(struct conn *c, void *p, size_t n);
int tls_write(struct conn *c, const void *p, size_t n);
int tls_pending(struct conn *c);
/* tds_put, in packets of another type (PRELOGIN). */
void tds_put_type(struct conn *c, unsigned char type, const void *p, size_t n);
/* control: rpc-counts: "sp_executesql=N sp_prepare=N ..." */
void rpc_counts(char *out, size_t len);
int exec_bulk(struct conn *c, const unsigned char *p, size_t len);
int exec_insert_bulk_begin(struct conn *c, struct stmt *s, struct sqlerr *e);
const unsigned char *skip_all_headers(const unsigned char *p, const unsigned char *end);
/* Open the connection's SQLite handle on database name; 0 or -1. */
int exec_use_database(struct conn *c, const char *name, struct sqlerr *e);

/* ---- catalog (catalog.c) ---- */
/* Find schema.name (schema may be NULL = dbo); 0 found, -1 missing. */
int catalog_table(sqlite3 *db, const char *schema, const char *name, struct table_info *t);
/* CREATE [UNIQUE] INDEX name ON table (cols): an SQLite index on the storage. */
int catalog_create_index(sqlite3 *db, const struct stmt *s, struct sqlerr *e);
void table_info_free(struct table_info *t);
int catalog_init(sqlite3 *db);
int catalog_create_table(sqlite3 *db, const struct stmt *s, struct sqlerr *e);
int catalog_drop_table(sqlite3 *db, const struct stmt *s, struct sqlerr *e);
int catalog_alter(sqlite3 *db, const struct stmt *s, struct sqlerr *e);
int catalog_create_schema(sqlite3 *db, const char *name, struct sqlerr *e);
/* The SQLite table name for schema.name: "schema.name" (quoted by caller). */
void storage_name(const char *schema, const char *name, char *buf, size_t len);
/* Append ", " (unless *list is empty) and a formatted item (sqlite3_mprintf
 * formats: %w, %Q) to a list in SQLite memory; *list may start as NULL. */
void list_add(char **list, const char *fmt, ...);
long long catalog_next_identity(sqlite3 *db, struct table_info *t);

/* ---- CDC (cdc.c) ---- */
int cdc_exec_proc(struct conn *c, const struct stmt *s, struct sqlerr *e);
void cdc_register(sqlite3 *db, struct conn *c);
/* After each statement: a committed transaction's LSN becomes visible. */
void cdc_statement_end(struct conn *c);
int cdc_drop_triggers(sqlite3 *db, const struct table_info *t);
int cdc_create_triggers(sqlite3 *db, const struct table_info *t, struct sqlerr *e);
int cdc_drop_capture(sqlite3 *db, const struct table_info *t, struct sqlerr *e);
int cdc_table_function(struct conn *c, const struct tableref *from, char *sql, size_t len, struct table_info *t,
                       struct sqlerr *e);

/* ---- server-wide (main.c) ---- */
struct server_config {
	char dir[4096]; /* database files live here */
	char databases[16][129];
	int ndatabases;
	int default_db;
	char users[16][2][129]; /* user, password */
	int nusers;
	char version[256];
};
extern struct server_config server;
/* Faults set through the control port; each is consumed by one use. */
struct faults {
	long drop_after_rows; /* -1 off */
	long error_after_rows;
	long stall_after_rows;
	int stall_ms;
	int refuse_logins;
	char match[256]; /* only a query whose SQL contains this */
};
int fault_peek(const char *sql, long *rows_drop, long *rows_error, long *rows_stall, int *stall_ms);
int fault_fire(void);
int fault_refuse_logins(void);
/* delay packet-us: microseconds each reply packet waits before it is sent
 * (a remote server's round trips and bandwidth), 0 for none. */
long packet_delay_us(void);
uint64_t next_rowversion(void);
/* @@DBTS: the last rowversion handed out. */
uint64_t current_rowversion(void);
/* DB_ID(name): master 1, the -D databases from 5 in order; 0 if unknown. */
int database_id(const char *name);

/* ---- open transactions (txn.c) ---- */
/* An explicit transaction of session c begins or ends. */
void txn_begin(const struct conn *c);
void txn_end(const struct conn *c);
/* The next rowversion, noted as c's open transaction's first if it is. */
uint64_t txn_rowversion(const struct conn *c);
/* MIN_ACTIVE_ROWVERSION(): the lowest rowversion an open transaction
 * holds, else @@DBTS + 1. */
uint64_t min_active_rowversion(void);
/* control: permission view-server-state on|off */
void txn_set_server_state_denied(int denied);
/* Register the tds_dm_tran virtual table on a connection's database. */
void txn_register(sqlite3 *db);
uint64_t next_lsn(void);
int next_spid(void);
void sqlerr_set(struct sqlerr *e, int number, int cls, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
