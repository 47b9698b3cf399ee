#!/usr/bin/env bats
# tests/mssqld: the TDS 7.4 SQL Server stand-in, seen only through real
# clients: FreeTDS tsql, bsqldb and freebcp, and python3-pymssql. This suite
# tests the stand-in itself, so it always starts one (never a real server).

load test_helper
load stand_ins

stand_ins_per_file --private mssql

setup() {
	common_setup
	load_env
	T="t$BATS_TEST_NUMBER"
}

@test "tsql logs in with SQL authentication and runs a batch" {
	run bash -c "printf 'select @@version\ngo\n' | tsql -S mssql -U '$DPONE_TEST_MSSQL_USER' -P '$DPONE_TEST_MSSQL_PASSWORD' 2>&1"
	assert_success
	assert_output_contains "Microsoft SQL Server 2019"
	assert_output_contains "(1 row affected)"
}

@test "a wrong password is error 18456 for every client" {
	run bash -c "printf 'select 1\n' | bsqldb -S mssql -U '$DPONE_TEST_MSSQL_USER' -P wrong 2>&1"
	assert_failure
	assert_output_contains "Login failed for user '$DPONE_TEST_MSSQL_USER'."
	run /usr/bin/python3 -c "
import pymssql
try:
    pymssql.connect(server='$DPONE_TEST_MSSQL_HOST', port=$DPONE_TEST_MSSQL_PORT, user='nobody', password='x', tds_version='7.3')
except pymssql.OperationalError as e:
    print(e.args[0][0])"
	assert_output "18456"
}

@test "logins can be refused on demand and allowed again" {
	control "$MSSQLD_CONTROL" "fault refuse-logins on"
	run bash -c "echo 'select 1' | sql"
	assert_failure
	assert_output_contains "Login failed"
	control "$MSSQLD_CONTROL" "fault refuse-logins off"
	run bash -c "echo 'select 1' | sql"
	assert_success
	assert_output "1"
}

@test "databases: the login's, USE, DB_NAME(), and unknown ones" {
	run bash -c "printf 'select db_name()\nuse master\nselect db_name()\n' | sql"
	assert_success
	assert_output "dwh
master"
	run bash -c "echo 'use nosuch' | sql 2>&1"
	assert_failure
	assert_output_contains "Database 'nosuch' does not exist."
	run bash -c "echo 'select 1' | sql nosuch 2>&1"
	assert_failure
	assert_output_contains "Cannot open database \"nosuch\" requested by the login."
}

@test "server functions: @@VERSION, SERVERPROPERTY, SYSUTCDATETIME" {
	run bash -c "echo \"select SERVERPROPERTY('ProductVersion'), CONVERT(varchar(30), SYSUTCDATETIME(), 126)\" | sql"
	assert_success
	[[ "$output" =~ ^15\.0\.4000\.0\|20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:]{8}\.[0-9]{7}$ ]] || flunk "got: $output"
}

@test "every type round-trips exactly (CONVERT on the server)" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, b bit, ti tinyint, si smallint, i int, bi bigint,
  d decimal(38,10), n numeric(5,2), m money, sm smallmoney, r real, f float, dt date, tm time(7),
  sdt smalldatetime, dtm datetime, dt2 datetime2(7), dt3 datetime2(3), dto datetimeoffset(7),
  c char(5), vc varchar(20), nc nchar(4), nvc nvarchar(30), vcm varchar(max), nvm nvarchar(max),
  bn binary(4), vb varbinary(8), vbm varbinary(max), g uniqueidentifier)
INSERT INTO $T VALUES (1, 1, 255, -32768, -2147483648, -9223372036854775808,
  -9999999999999999999999999999.9999999999, 999.99, -922337203685477.5808, 214748.3647, -3.4e38, 2.2250738585072014e-308,
  '0001-01-01', '00:00:00.0000001', '1900-01-01 00:00', '1753-01-01 00:00:00.003', '0001-01-01 00:00:00.0000000',
  '2026-11-26 23:59:59.999', '2026-11-26 01:02:03.4567891 -13:45', 'a b', 'x''y', N'Ω', N'😀𝄞z', '', N'',
  0x00FF, 0x, 0x0102, '6f9619ff-8b86-d011-b42d-00c04fc964ff')
INSERT INTO $T VALUES (2, 0, 0, 32767, 2147483647, 9223372036854775807,
  9999999999999999999999999999.9999999999, -0.01, 922337203685477.5807, -214748.3648, 1.1754944e-38, 1.7976931348623157e308,
  '9999-12-31', '23:59:59.9999999', '2079-06-06 23:59', '9999-12-31 23:59:59.997', '9999-12-31 23:59:59.9999999',
  '2026-11-26 00:00:00.001', '9999-12-31 23:59:59.9999999 +14:00', 'abcde', 'café', N'日本語', N'tab	end', 'x', N'ü',
  0xDEADBEEF, 0x0102030405060708, 0x, '00000000-0000-0000-0000-000000000000')
INSERT INTO $T (id) VALUES (3)
SQL
	run sql <<SQL
SELECT id, b, ti, si, i, bi, CONVERT(varchar(60), d), CONVERT(varchar(20), n), CONVERT(varchar(30), m),
  CONVERT(varchar(30), sm), CONVERT(varchar(30), r), CONVERT(varchar(40), f), CONVERT(varchar(10), dt, 121),
  CONVERT(varchar(20), tm, 121), CONVERT(varchar(30), sdt, 121), CONVERT(varchar(30), dtm, 121),
  CONVERT(varchar(30), dt2, 121), CONVERT(varchar(30), dt3, 121), CONVERT(varchar(40), dto, 121),
  '[' + c + ']', vc, N'[' + nc + N']', nvc, CAST('[' + vcm + ']' AS varchar(10)), CAST(N'[' + nvm + N']' AS nvarchar(10)), CONVERT(varchar(20), bn, 1),
  CONVERT(varchar(20), vb, 1), CONVERT(varchar(20), vbm, 1), CONVERT(varchar(40), g)
FROM $T ORDER BY id
SQL
	assert_success
	assert_output "1|1|255|-32768|-2147483648|-9223372036854775808|-9999999999999999999999999999.9999999999|999.99|-922337203685477.5808|214748.3647|-3.3999999521443642e+38|2.2250738585072014e-308|0001-01-01|00:00:00.0000001|1900-01-01 00:00:00|1753-01-01 00:00:00.003|0001-01-01 00:00:00.0000000|2026-11-26 23:59:59.999|2026-11-26 01:02:03.4567891 -13:45|[a b  ]|x'y|[Ω   ]|😀𝄞z|[]|[]|0x00FF0000|0x|0x0102|6F9619FF-8B86-D011-B42D-00C04FC964FF
2|0|0|32767|2147483647|9223372036854775807|9999999999999999999999999999.9999999999|-0.01|922337203685477.5807|-214748.3648|1.1754943508222875e-38|1.7976931348623157e+308|9999-12-31|23:59:59.9999999|2079-06-06 23:59:00|9999-12-31 23:59:59.997|9999-12-31 23:59:59.9999999|2026-11-26 00:00:00.001|9999-12-31 23:59:59.9999999 +14:00|[abcde]|café|[日本語 ]|tab	end|[x]|[ü]|0xDEADBEEF|0x0102030405060708|0x|00000000-0000-0000-0000-000000000000
3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL"
}

@test "typed values arrive over the wire as pymssql reads them" {
	sql <<SQL
CREATE TABLE $T (id int PRIMARY KEY, d decimal(38,10), bi bigint, dt2 datetime2(6), nv nvarchar(20), vb varbinary(10), g uniqueidentifier, f float, b bit, dtm datetime, sdt smalldatetime, dt date, tm time(3), m money)
INSERT INTO $T VALUES (1, -1234567890123456789012345678.0123456789, -9223372036854775808, '2026-11-26 10:11:12.123456', N'😀 x', 0x00ff10, 'F3A9AB4F-1234-4E5A-9ABC-0123456789AB', 0.1, 1, '2026-01-01 00:00:00.007', '2026-01-01 12:34:29', '0001-01-01', '12:34:56.500', 0.0001)
SQL
	run py "$T" <<'PY'
cur.execute("SELECT d, bi, dt2, nv, vb, g, f, b, dtm, sdt, dt, tm, m FROM %s" % sys.argv[1])
for v in cur.fetchone():
    print(repr(v))
PY
	assert_success
	assert_output "Decimal('-1234567890123456789012345678.0123456789')
-9223372036854775808
datetime.datetime(2026, 11, 26, 10, 11, 12, 123000)
'😀 x'
b'\\x00\\xff\\x10'
UUID('f3a9ab4f-1234-4e5a-9abc-0123456789ab')
0.1
True
datetime.datetime(2026, 1, 1, 0, 0, 0, 7000)
datetime.datetime(2026, 1, 1, 12, 34)
datetime.date(1, 1, 1)
datetime.time(12, 34, 56, 500000)
Decimal('0.0001')"
}

@test "a 5 MB varbinary(max) and a long nvarchar(max) travel as PLP" {
	echo "CREATE TABLE $T (id int PRIMARY KEY, vb varbinary(max), nv nvarchar(max))" | sql
	run py "$T" <<'PY'
blob = bytes(range(256)) * 20480
text = "é😀" * 300000
cur.execute("INSERT INTO " + sys.argv[1] + " VALUES (1, %s, %s)", (blob, text))
cur.execute("SELECT vb, nv FROM " + sys.argv[1])
vb, nv = cur.fetchone()
print(len(vb), vb == blob, len(nv), nv == text)
PY
	assert_success
	assert_output "5242880 True 600000 True"
}

@test "statements: CREATE SCHEMA/TABLE with keys, identity, defaults; multi-row INSERT" {
	run sql <<SQL
CREATE SCHEMA s$T
CREATE TABLE [s$T].[a]]b] ([id] int IDENTITY(10,5) NOT NULL, [name] nvarchar(10) NOT NULL DEFAULT N'none',
  created datetime2 NOT NULL DEFAULT SYSUTCDATETIME(), note varchar(10) NULL, CONSTRAINT pk_$T PRIMARY KEY ([id]))
INSERT INTO [s$T].[a]]b] (note) VALUES ('x'), ('y'), (NULL)
INSERT INTO [s$T].[a]]b] (name, note) VALUES (N'zoë', 'z')
SQL
	assert_success
	run bash -c "echo \"SELECT id, name, ISNULL(note, '-') FROM [s$T].[a]]b] ORDER BY id\" | sql"
	assert_success
	assert_output "10|none|x
15|none|y
20|none|-
25|zoë|z"
}

@test "WHERE: comparisons, AND/OR/NOT, IS NULL, IN, BETWEEN, parentheses; TOP and ORDER BY" {
	sql <<SQL
CREATE TABLE $T (id int PRIMARY KEY, name varchar(10), amount decimal(10,2), at datetime2(7))
INSERT INTO $T VALUES (1, 'Ann', 10.00, '2026-01-01'), (2, 'bob', 20.50, '2026-01-02 00:00:00.0000001'),
  (3, NULL, -5, '2026-01-03'), (4, 'ANN  ', 99.99, NULL), (5, 'eve', 20.5, '2026-01-02')
SQL
	q() { echo "SELECT id FROM $T WITH (NOLOCK) WHERE $1 ORDER BY id" | sql | tr '\n' ' '; }
	[ "$(q "name = 'ann'")" = "1 4 " ] || flunk "case and trailing blanks: $(q "name = 'ann'")"
	[ "$(q "amount > 20.4 AND NOT (id = 5)")" = "2 4 " ] || flunk "and/not: $(q "amount > 20.4 AND NOT (id = 5)")"
	[ "$(q "name IS NULL OR amount = 20.5")" = "2 3 5 " ] || flunk "or/is null"
	[ "$(q "id IN (1, 3, 9)")" = "1 3 " ] || flunk "in"
	[ "$(q "id NOT IN (1, 3)")" = "2 4 5 " ] || flunk "not in"
	[ "$(q "amount BETWEEN -5 AND 10")" = "1 3 " ] || flunk "between"
	[ "$(q "at > '2026-01-02'")" = "2 3 " ] || flunk "datetime2 full precision: $(q "at > '2026-01-02'")"
	[ "$(q "at IS NOT NULL AND (id < 2 OR id > 4)")" = "1 5 " ] || flunk "parentheses"
	run bash -c "echo 'SELECT TOP 2 id FROM $T ORDER BY amount DESC, id' | sql | tr '\n' ' '"
	assert_output "4 2 "
	run bash -c "echo 'SELECT TOP (1) name FROM $T WHERE name IS NOT NULL ORDER BY name' | sql"
	assert_output "Ann"
}

@test "aggregates: COUNT(*), COUNT_BIG(*), MIN, MAX on every kind of column" {
	sql <<SQL
CREATE TABLE $T (id bigint PRIMARY KEY, amount decimal(20,4), at datetime2(7), name nvarchar(10), rv rowversion)
INSERT INTO $T (id, amount, at, name) VALUES (5, -1.5, '2026-01-01 00:00:00.0000001', N'b'), (9, 1000000.0001, '2025-12-31', N'A'), (7, NULL, NULL, NULL)
SQL
	run bash -c "echo \"SELECT COUNT(*), COUNT_BIG(*), COUNT(amount), MIN(id), MAX(id), MIN(amount), MAX(amount), CONVERT(varchar(30), MAX(at), 121), MIN(name), MAX(name) FROM $T\" | sql"
	assert_success
	assert_output "3|3|2|5|9|-1.5000|1000000.0001|2026-01-01 00:00:00.0000001|A|b"
	run bash -c "echo \"SELECT COUNT(*) FROM $T WHERE amount > 0\" | sql"
	assert_output "1"
}

@test "CAST and CONVERT between types, with SQL Server's errors" {
	run bash -c "echo \"SELECT CAST('12.345' AS decimal(5,2)), CONVERT(int, '42'), CAST(1.5 AS int), CONVERT(varchar(30), CAST('2026-11-26T10:00:00.1234567' AS datetime2(3)), 121), CAST(N'x' AS varchar(1))\" | sql"
	assert_success
	assert_output "12.35|42|1|2026-11-26 10:00:00.123|x"
	run bash -c "echo \"SELECT CAST('abc' AS int)\" | sql 2>&1"
	assert_failure
	assert_output_contains "Conversion failed when converting the varchar value 'abc' to data type int."
	run bash -c "echo \"SELECT CAST(1000 AS decimal(3,0))\" | sql 2>&1"
	assert_failure
	assert_output_contains "Msg 8115"
	run bash -c "echo \"SELECT CAST('2026-02-30' AS date)\" | sql 2>&1"
	assert_failure
	assert_output_contains "Conversion failed when converting date and/or time from character string."
}

@test "UPDATE and DELETE report their counts" {
	sql <<SQL
CREATE TABLE $T (id int PRIMARY KEY, v nvarchar(10), rv rowversion)
INSERT INTO $T (id, v) VALUES (1, N'a'), (2, N'b'), (3, N'c')
SQL
	run bash -c "printf \"UPDATE $T SET v = N'z' WHERE id >= 2\nSELECT @@ROWCOUNT\nDELETE FROM $T WHERE id = 1\nSELECT @@ROWCOUNT\nSELECT id, v FROM $T ORDER BY id\n\" | sql"
	assert_success
	assert_output "2
1
2|z
3|z"
	run py "$T" <<'PY'
cur.execute("SELECT rv FROM %s ORDER BY id" % sys.argv[1])
a, b = [r[0] for r in cur.fetchall()]
cur.execute("UPDATE %s SET v = N'q' WHERE id = 2" % sys.argv[1])
cur.execute("SELECT rv FROM %s WHERE id = 2" % sys.argv[1])
c = cur.fetchone()[0]
print(len(a), c > a and c > b)
PY
	assert_output "8 True"
}

@test "ALTER TABLE ADD, ALTER COLUMN (widen and narrow), DROP COLUMN" {
	sql <<SQL
CREATE TABLE $T (id int PRIMARY KEY, small int, name varchar(5), drop_me bit)
INSERT INTO $T VALUES (1, 2147483647, 'abc', 1)
ALTER TABLE $T ADD extra nvarchar(10) NULL, flag bit NOT NULL DEFAULT 1
ALTER TABLE $T ALTER COLUMN small bigint
ALTER TABLE $T ALTER COLUMN name varchar(50) NULL
ALTER TABLE $T DROP COLUMN drop_me
SQL
	run bash -c "echo \"SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = '$T' ORDER BY ORDINAL_POSITION\" | sql"
	assert_output "id|int|NULL
small|bigint|NULL
name|varchar|50
extra|nvarchar|10
flag|bit|NULL"
	run bash -c "echo 'SELECT id, small, name, extra, flag FROM $T' | sql"
	assert_output "1|2147483647|abc|NULL|1"
	run bash -c "echo 'ALTER TABLE $T ALTER COLUMN small smallint' | sql 2>&1"
	assert_failure
	assert_output_contains "Msg 8115"
	run bash -c "echo 'SELECT small FROM $T' | sql"
	assert_output "2147483647"
}

@test "DROP TABLE, IF EXISTS, and the errors for missing objects" {
	run bash -c "printf 'CREATE TABLE $T (id int)\nDROP TABLE $T\nDROP TABLE IF EXISTS $T\nSELECT 1\n' | sql"
	assert_success
	assert_output "1"
	run bash -c "echo 'DROP TABLE $T' | sql 2>&1"
	assert_failure
	assert_output_contains "Cannot drop the table '$T', because it does not exist"
	run bash -c "echo 'SELECT * FROM dbo.nosuch' | sql 2>&1"
	assert_failure
	assert_output_contains "Msg 208"
	assert_output_contains "Invalid object name 'dbo.nosuch'."
}

@test "errors: syntax 102, column 207, key 2627, NULL 515, and the batch rules" {
	echo "CREATE TABLE $T (id int PRIMARY KEY, v int NOT NULL)" | sql
	run bash -c "echo 'SELEC 1' | sql 2>&1"
	assert_output_contains "Msg 102"
	run bash -c "echo 'SELECT nope FROM $T' | sql 2>&1"
	assert_output_contains "Invalid column name 'nope'."
	# A key violation ends the statement; the batch goes on.
	run bash -c "printf 'INSERT INTO $T VALUES (1, 1)\nINSERT INTO $T VALUES (1, 2)\nSELECT COUNT(*) FROM $T\n' | sql 2>&1"
	assert_output_contains "Msg 2627"
	assert_output_contains "Violation of PRIMARY KEY constraint"
	run bash -c "echo 'SELECT COUNT(*), MAX(v) FROM $T' | sql"
	assert_output "1|1"
	run bash -c "echo 'INSERT INTO $T (id) VALUES (2)' | sql 2>&1"
	assert_output_contains "Msg 515"
	# Outside the subset (GROUP BY): a syntax error, never a wrong answer.
	run bash -c "echo 'SELECT v, COUNT(*) FROM $T GROUP BY v' | sql 2>&1"
	assert_failure
	assert_output_contains "Msg 156"
}

@test "variables: DECLARE, SET, SELECT @v =, and an undeclared one" {
	run bash -c "printf \"DECLARE @a int = 40, @b nvarchar(10)\nSET @a = @a + 2\nSET @b = N'x'\nSELECT @a, @b\n\" | sql"
	assert_success
	assert_output "42|x"
	run bash -c "echo 'SELECT @nope' | sql 2>&1"
	assert_output_contains 'Must declare the scalar variable "@nope".'
}

@test "SET options clients send are accepted; FMTONLY returns metadata only" {
	echo "CREATE TABLE $T (id int PRIMARY KEY); INSERT INTO $T VALUES (1)" | sql
	run bash -c "printf 'SET TEXTSIZE 4096\nSET ANSI_NULLS ON\nSET QUOTED_IDENTIFIER ON\nSET NOCOUNT ON\nSET TRANSACTION ISOLATION LEVEL READ COMMITTED\nSET DATEFORMAT ymd\nSET FMTONLY ON SELECT id FROM $T SET FMTONLY OFF\nSELECT id FROM $T\n' | sql"
	assert_success
	assert_output "1"
}

@test "transactions: BEGIN/COMMIT/ROLLBACK" {
	run bash -c "printf 'CREATE TABLE $T (id int)\nBEGIN TRAN\nINSERT INTO $T VALUES (1)\nROLLBACK\nBEGIN TRANSACTION\nINSERT INTO $T VALUES (2)\nCOMMIT TRAN\nSELECT id FROM $T\n' | sql"
	assert_success
	assert_output "2"
}

@test "transactions of two sessions: an open one's rows are invisible until it commits; @@TRANCOUNT, MIN_ACTIVE_ROWVERSION(), @@DBTS, the DMVs" {
	sql <<< "CREATE TABLE $T (id int NOT NULL PRIMARY KEY, at datetime2(7) NOT NULL, rv rowversion)"
	sql <<< "INSERT INTO $T (id, at) VALUES (1, SYSUTCDATETIME())"
	open_transaction late "INSERT INTO $T (id, at) VALUES (2, SYSUTCDATETIME())"
	# another session writes and commits meanwhile
	sql <<< "INSERT INTO $T (id, at) VALUES (3, SYSUTCDATETIME())"
	run bash -c "echo 'SELECT id FROM $T ORDER BY id' | sql"
	assert_output "$(printf '1\n3')"
	# the open transaction holds the rowversion below row 3's
	IFS='|' read -r marv dbts lo hi <<< "$(echo "SELECT MIN_ACTIVE_ROWVERSION(), @@DBTS, MIN(rv), MAX(rv) FROM $T" | sql)"
	[[ $lo < $marv && $marv < $hi && $dbts == "$hi" ]] || flunk "MIN_ACTIVE_ROWVERSION $marv, @@DBTS $dbts, rows $lo..$hi"
	run bash -c "echo 'SELECT COUNT(*) FROM sys.dm_tran_database_transactions WHERE database_id = DB_ID() AND database_transaction_begin_time IS NOT NULL' | sql"
	assert_output "1"
	run bash -c "echo 'SELECT COUNT(*) FROM sys.dm_tran_active_transactions' | sql"
	assert_output "1"
	commit_transaction late
	run bash -c "echo 'SELECT id FROM $T ORDER BY id' | sql"
	assert_output "$(printf '1\n2\n3')"
	IFS='|' read -r marv dbts count <<< "$(echo "SELECT MIN_ACTIVE_ROWVERSION(), @@DBTS, @@TRANCOUNT" | sql)"
	[ "$((marv))" = "$((dbts + 1))" ] && [ "$count" = 0 ] || flunk "MIN_ACTIVE_ROWVERSION $marv, @@DBTS $dbts, @@TRANCOUNT $count"
	run bash -c "echo 'SELECT COUNT(*) FROM sys.dm_tran_database_transactions' | sql"
	assert_output "0"
	# a duplicate key held in a transaction fails its COMMIT, and nothing of it stays
	run bash -c "printf 'BEGIN TRAN\nINSERT INTO $T (id, at) VALUES (4, SYSUTCDATETIME())\nINSERT INTO $T (id, at) VALUES (1, SYSUTCDATETIME())\nCOMMIT\n' | sql"
	assert_output_contains "Violation of PRIMARY KEY constraint"
	run bash -c "echo 'SELECT COUNT(*) FROM $T' | sql"
	assert_output "3"
}

@test "the DMVs without VIEW SERVER STATE: error 300" {
	control "$MSSQLD_CONTROL" "permission view-server-state off" > /dev/null
	run bash -c "echo 'SELECT COUNT(*) FROM sys.dm_tran_database_transactions' | sql"
	control "$MSSQLD_CONTROL" "permission view-server-state on" > /dev/null
	assert_failure
	assert_output_contains "VIEW SERVER STATE permission was denied on object 'server', database 'master'."
}

@test "ODBC (FreeTDS tdsodbc through python3-pyodbc): parameterised INSERT and SELECT as prepared statements" {
	local driver=/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so
	[ -f "$driver" ] || flunk "tdsodbc is not installed (scripts/deps installs it)"
	run /usr/bin/python3 - <<PY
import pyodbc
conn = pyodbc.connect("DRIVER=$driver;SERVER=$DPONE_TEST_MSSQL_HOST;PORT=$DPONE_TEST_MSSQL_PORT;"
                      "UID=$DPONE_TEST_MSSQL_USER;PWD=$DPONE_TEST_MSSQL_PASSWORD;"
                      "DATABASE=$DPONE_TEST_MSSQL_DATABASE;TDS_Version=7.4", autocommit=True)
cur = conn.cursor()
cur.execute("CREATE TABLE $T (id int NOT NULL PRIMARY KEY, name nvarchar(20), amount decimal(10,2))")
cur.executemany("INSERT INTO $T (id, name, amount) VALUES (?, ?, ?)",
                [(i, name, "%d.50" % i) for i, name in ((1, "one"), (2, "zwei, Ä"), (3, None))])
cur.execute("SELECT id, name, amount FROM $T WHERE id >= ? AND name IS NOT NULL ORDER BY id", 1)
print(cur.fetchall())
cur.execute("SELECT id, name, amount FROM $T WHERE id >= ? AND name IS NOT NULL ORDER BY id", 2)
print(cur.fetchall())
cur.close()
try:
    conn.cursor().execute("SELECT nope FROM $T WHERE id = ?", 1)
except pyodbc.Error as e:
    print("error", e.args[0], "Invalid column name 'nope'" in str(e))
PY
	assert_success
	assert_line "[(1, 'one', Decimal('1.50')), (2, 'zwei, Ä', Decimal('2.50'))]"
	assert_line "[(2, 'zwei, Ä', Decimal('2.50'))]"
	assert_line "error 42S22 True"
	counts=$(control "$MSSQLD_CONTROL" rpc-counts)
	# FreeTDS's ODBC driver prepares and executes each statement in one RPC
	for proc in sp_prepexec sp_unprepare; do
		[[ $counts =~ $proc=[1-9] ]] || flunk "no $proc served: $counts"
	done
}

@test "RPC sp_prepare, sp_execute, sp_unprepare by name (python3-pymssql's db-lib RPCs), a handle as OUTPUT" {
	run /usr/bin/python3 - <<PY
from pymssql import _mssql
c = _mssql.connect(server="$DPONE_TEST_MSSQL_HOST", port=int("$DPONE_TEST_MSSQL_PORT"), user="$DPONE_TEST_MSSQL_USER",
                   password="$DPONE_TEST_MSSQL_PASSWORD", database="$DPONE_TEST_MSSQL_DATABASE", tds_version="7.3")
c.execute_non_query("CREATE TABLE $T (id int NOT NULL PRIMARY KEY, name nvarchar(20))")
p = c.init_procedure("sp_prepare")
p.bind(None, _mssql.SQLINT4, "@handle", output=True, null=True)
p.bind("@id int, @name nvarchar(20)", _mssql.SQLVARCHAR, "@params")
p.bind("INSERT INTO $T (id, name) VALUES (@id, @name)", _mssql.SQLVARCHAR, "@stmt")
p.execute()
h = p.parameters["@handle"]
print("handle", h > 0)
for i in (1, 2):
    e = c.init_procedure("sp_execute")
    e.bind(h, _mssql.SQLINT4, "@handle")
    e.bind(i, _mssql.SQLINT4)
    e.bind("n%d" % i, _mssql.SQLVARCHAR)
    e.execute()
u = c.init_procedure("sp_unprepare")
u.bind(h, _mssql.SQLINT4, "@handle")
u.execute()
try:
    e = c.init_procedure("sp_execute")
    e.bind(h, _mssql.SQLINT4, "@handle")
    e.execute()
except _mssql.MSSQLDatabaseException as x:
    print("after sp_unprepare:", x.number)
c.execute_query("SELECT id, name FROM $T ORDER BY id")
print(" ".join("%d:%s" % (r[0], r[1]) for r in c))
PY
	assert_success
	assert_line "handle True"
	assert_line "after sp_unprepare: 8179"
	assert_line "1:n1 2:n2"
}

@test "catalog views: INFORMATION_SCHEMA and sys" {
	sql <<SQL
CREATE TABLE $T (a int NOT NULL, b nvarchar(20), c decimal(12,3), d datetime2(4), CONSTRAINT pk_$T PRIMARY KEY (b, a))
SQL
	run bash -c "echo \"SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = '$T'\" | sql"
	assert_output "dwh|dbo|BASE TABLE"
	run bash -c "echo \"SELECT COLUMN_NAME, IS_NULLABLE, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = '$T' ORDER BY ORDINAL_POSITION\" | sql"
	assert_output "a|NO|int|NULL|10|0|NULL
b|NO|nvarchar|20|NULL|NULL|NULL
c|YES|decimal|NULL|12|3|NULL
d|YES|datetime2|NULL|NULL|NULL|4"
	run bash -c "echo \"SELECT CONSTRAINT_TYPE, CONSTRAINT_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS WHERE TABLE_NAME = '$T'\" | sql"
	assert_output "PRIMARY KEY|pk_$T"
	run bash -c "echo \"SELECT COLUMN_NAME, ORDINAL_POSITION FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE WHERE TABLE_NAME = '$T' ORDER BY ORDINAL_POSITION\" | sql"
	assert_output "b|1
a|2"
	run bash -c "echo \"SELECT name, system_type_id, max_length, precision, scale, is_nullable FROM sys.columns WHERE object_id = OBJECT_ID('dbo.$T') ORDER BY column_id\" | sql"
	assert_output "a|56|4|10|0|0
b|231|40|0|0|0
c|106|9|12|3|1
d|42|7|24|4|1"
	run bash -c "echo \"SELECT name, system_type_id FROM sys.types WHERE name IN ('datetime2', 'nvarchar', 'uniqueidentifier') ORDER BY name\" | sql"
	assert_output "datetime2|42
nvarchar|231
uniqueidentifier|36"
	run bash -c "echo \"SELECT name, is_primary_key FROM sys.indexes WHERE object_id = OBJECT_ID('$T')\" | sql"
	assert_output "pk_$T|1"
	run bash -c "echo \"SELECT column_id, key_ordinal FROM sys.index_columns WHERE object_id = OBJECT_ID('$T') ORDER BY key_ordinal\" | sql"
	assert_output "2|1
1|2"
	run bash -c "echo \"SELECT COUNT(*) FROM sys.tables WHERE name = '$T'\" | sql"
	assert_output "1"
	run bash -c "echo \"SELECT schema_id FROM sys.schemas WHERE name = 'dbo'\" | sql"
	assert_output "1"
}

@test "CDC: capture, LSNs, all vs all update old, time mapping" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(10), amount decimal(9,2))
EXEC sys.sp_cdc_enable_db
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'$T', @role_name = NULL
INSERT INTO $T VALUES (1, N'a', 1.00), (2, N'b', 2.00)
UPDATE $T SET amount = 1.50 WHERE id = 1
DELETE FROM $T WHERE id = 2
SQL
	run sql <<SQL
DECLARE @from binary(10), @to binary(10)
SET @from = sys.fn_cdc_get_min_lsn('dbo_$T')
SET @to = sys.fn_cdc_get_max_lsn()
SELECT __\$operation, CONVERT(varchar(10), __\$update_mask, 1), id, v, amount FROM cdc.fn_cdc_get_all_changes_dbo_$T(@from, @to, N'all') ORDER BY __\$start_lsn, __\$seqval, __\$operation
SELECT COUNT(*) FROM cdc.fn_cdc_get_all_changes_dbo_$T(@from, @to, N'all update old')
SQL
	assert_success
	assert_output "2|0x07|1|a|1.00
2|0x07|2|b|2.00
4|0x04|1|a|1.50
1|0x07|2|b|2.00
5"
	# LSNs increase with each transaction; seqvals order the changes within one.
	run py "$T" <<'PY'
cur.execute("SELECT sys.fn_cdc_get_min_lsn('dbo_%s'), sys.fn_cdc_get_max_lsn()" % sys.argv[1])
lo, hi = cur.fetchone()
cur.execute("DECLARE @f binary(10) = sys.fn_cdc_get_min_lsn('dbo_%s'), @t binary(10) = sys.fn_cdc_get_max_lsn(); SELECT __$start_lsn, __$seqval FROM cdc.fn_cdc_get_all_changes_dbo_%s(@f, @t, N'all')" % (sys.argv[1], sys.argv[1]))
rows = cur.fetchall()
print(len(lo), lo <= hi, [r[0] for r in rows] == sorted(r[0] for r in rows), len(set(r[0] for r in rows)), len(set(r[1] for r in rows)) == len(rows))
cur.execute("SELECT sys.fn_cdc_increment_lsn(%s), sys.fn_cdc_map_lsn_to_time(%s)", (hi, hi))
inc, when = cur.fetchone()
print(inc > hi, type(when).__name__)
PY
	assert_output "10 True True 3 True
True datetime"
}

@test "CDC: a changes window outside retention or the log is error 313, never empty" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY)
EXEC sys.sp_cdc_enable_db
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'$T', @role_name = NULL
INSERT INTO $T VALUES (1)
INSERT INTO $T VALUES (2)
SQL
	run py "$T" <<'PY'
t = sys.argv[1]
cur.execute("SELECT sys.fn_cdc_get_min_lsn('dbo_%s'), sys.fn_cdc_get_max_lsn()" % t)
lo, hi = cur.fetchone()
cur.execute("EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_%s', @low_water_mark = %%s, @threshold = 5000" % t, (hi,))
for frm, to in ((lo, hi), (hi, hi + b"")):
    try:
        cur.execute("SELECT COUNT(*) FROM cdc.fn_cdc_get_all_changes_dbo_%s(%%s, %%s, N'all')" % t, (frm, to))
        print("rows", cur.fetchone()[0])
    except pymssql.Error as e:
        print("error", e.args[0])
PY
	assert_output "error 313
rows 1"
}

@test "CDC: enabling needs the database enabled and a real table" {
	run bash -c "echo \"EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'nosuch_$T', @role_name = NULL\" | sql master 2>&1"
	assert_failure
	assert_output_contains "Msg 22901"
	run bash -c "echo \"EXEC sys.sp_cdc_enable_db; EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'nosuch_$T', @role_name = NULL\" | sql 2>&1"
	assert_failure
	assert_output_contains "Msg 22931"
	run bash -c "echo 'EXEC sys.sp_nosuch' | sql 2>&1"
	assert_output_contains "Could not find stored procedure 'sys.sp_nosuch'."
}

@test "RPC: sp_executesql with typed parameters (pymssql callproc)" {
	# pymssql's callproc hands out rows only on a cursor that ran a query
	# before (its own state, the same against SQL Server): run one first.
	run py <<'PY'
cur.execute("SELECT 1"); cur.fetchall()
cur.callproc("sp_executesql", ("SELECT @a + 1, @b, CONVERT(varchar(30), @c)", "@a int, @b nvarchar(20), @c decimal(10,3)", 41, "zoë 😀", decimal.Decimal("-1.250")))
print(cur.fetchall())
PY
	assert_success
	assert_output "[(42, 'zoë 😀', '-1.250')]"
}

@test "freebcp out and in round-trip a table" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, name nvarchar(20), amount decimal(10,2), at datetime2(3), flag bit, note varchar(max))
INSERT INTO $T VALUES (1, N'café ☃', 10.50, '2026-01-02 03:04:05.678', 1, 'x'), (2, NULL, NULL, NULL, NULL, NULL), (3, N'z', -0.01, '2000-01-01 00:00:00', 0, '')
CREATE TABLE ${T}_copy (id int NOT NULL PRIMARY KEY, name nvarchar(20), amount decimal(10,2), at datetime2(3), flag bit, note varchar(max))
SQL
	run freebcp "dbo.$T" out out.txt -c -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" -D dwh
	assert_success
	assert_output_contains "3 rows copied."
	run freebcp "dbo.${T}_copy" in out.txt -c -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" -D dwh
	assert_success
	assert_output_contains "3 rows copied."
	run bash -c "echo \"SELECT id, name, amount, CONVERT(varchar(30), at, 121), flag FROM ${T}_copy ORDER BY id\" | sql"
	assert_output "1|café ☃|10.50|2026-01-02 03:04:05.678|1
2|NULL|NULL|NULL|NULL
3|z|-0.01|2000-01-01 00:00:00.000|0"
}

@test "freebcp queryout streams a query" {
	echo "CREATE TABLE $T (id int PRIMARY KEY, v varchar(5)); INSERT INTO $T VALUES (1, 'a'), (2, 'b')" | sql
	run freebcp "SELECT v, id FROM dbo.$T ORDER BY id DESC" queryout q.txt -c -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" -D dwh
	assert_success
	[ "$(cat q.txt)" = "b	2
a	1" ] || flunk "$(cat q.txt)"
}

@test "concurrent connections each see their own work" {
	echo "CREATE TABLE $T (id int PRIMARY KEY, who int)" | sql
	for w in 1 2 3 4 5 6; do
		(for i in 1 2 3 4 5; do echo "INSERT INTO $T VALUES ($((w * 100 + i)), $w)"; done | sql > "w$w.out" 2>&1) &
	done
	wait
	run bash -c "echo 'SELECT COUNT(*), COUNT_BIG(*) FROM $T' | sql"
	assert_output "30|30"
}

@test "packet sizes: small and large packets carry the same rows" {
	echo "CREATE TABLE $T (id int PRIMARY KEY, v nvarchar(400))" | sql
	run py "$T" <<'PY'
cur.executemany("INSERT INTO " + sys.argv[1] + " VALUES (%d, %s)", [(i, "é" * 300 + str(i)) for i in range(300)])
PY
	for size in 512 4096 32767; do
		sed "s/\[global\]/[global]\n\tinitial block size = $size/" "$FREETDSCONF" > conf.$size
		FREETDSCONF=$PWD/conf.$size bsqldb -q -t '|' -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" -D dwh \
			<<< "SELECT id, v FROM $T ORDER BY id" > out.$size
	done
	[ "$(wc -l < out.512)" -eq 300 ] || flunk "512: $(wc -l < out.512) rows"
	cmp out.512 out.4096
	cmp out.512 out.32767
}

@test "ATTENTION cancels a result mid-stream; the connection stays usable" {
	echo "CREATE TABLE $T (id int PRIMARY KEY, pad char(200))" | sql
	run py "$T" <<'PY'
cur.executemany("INSERT INTO " + sys.argv[1] + " (id, pad) VALUES (%d, 'x')", [(i,) for i in range(20000)])
cur.execute("SELECT id, pad FROM " + sys.argv[1] + " ORDER BY id")
first = cur.fetchmany(5)
conn._conn.cancel()  # db-lib dbcancel(): an ATTENTION packet
cur.execute("SELECT COUNT(*) FROM " + sys.argv[1])
print([r[0] for r in first], cur.fetchone()[0])
PY
	assert_success
	assert_output "[0, 1, 2, 3, 4] 20000"
}

@test "faults: the connection drops after N rows" {
	echo "CREATE TABLE $T (id int PRIMARY KEY)" | sql
	seq 1 100 | sed "s/.*/INSERT INTO $T VALUES (&)/" | sql
	control "$MSSQLD_CONTROL" "fault drop-after-rows 10"
	run bash -c "echo 'SELECT id FROM $T ORDER BY id' | sql 2>&1"
	assert_failure
	[ "$(echo "$output" | grep -c '^[0-9]*$')" -le 10 ] || flunk "more than 10 rows arrived"
	# One-shot: the next query is whole again.
	run bash -c "echo 'SELECT COUNT(*) FROM $T' | sql"
	assert_output "100"
}

@test "faults: an error token in the middle of a result" {
	echo "CREATE TABLE $T (id int PRIMARY KEY)" | sql
	seq 1 50 | sed "s/.*/INSERT INTO $T VALUES (&)/" | sql
	control "$MSSQLD_CONTROL" "fault error-after-rows 20"
	run bash -c "echo 'SELECT id FROM $T ORDER BY id' | sql 2>&1"
	assert_failure
	assert_output_contains "Msg 1205"
	[ "$(echo "$output" | grep -c '^[0-9]*$')" -eq 20 ] || flunk "expected 20 rows before the error"
}

@test "faults: a stall mid-result, then the rest" {
	echo "CREATE TABLE $T (id int PRIMARY KEY)" | sql
	seq 1 30 | sed "s/.*/INSERT INTO $T VALUES (&)/" | sql
	control "$MSSQLD_CONTROL" "fault stall-after-rows 10 300"
	run bash -c "echo 'SELECT id FROM $T' | sql | wc -l"
	assert_output "30"
	run control "$MSSQLD_CONTROL" "fault nonsense"
	assert_failure
}

@test "seed scripts are ordinary T-SQL run by bsqldb" {
	run sql < "$BATS_TEST_DIRNAME/fixtures/seed/orders.sql"
	assert_success
	run bash -c "echo 'SELECT COUNT(*), MIN(order_id), MAX(order_id) FROM dbo.seed_orders' | sql"
	assert_output "5|1|5"
}

@test "REPLICATE, and SET TEXTSIZE cuts (max) values as SQL Server does" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v varchar(max), b varbinary(max), s varchar(20))
INSERT INTO $T VALUES (1, REPLICATE(CAST('ab' AS varchar(max)), 5), REPLICATE(CAST(0x0102 AS varbinary(max)), 3), 'abcdefghij')
SQL
	run bash -c "echo \"SELECT LEN(v), CONVERT(varchar(20), b, 1) FROM $T\" | sql"
	assert_output "10|0x010201020102"
	# bsqldb prints (max) columns in hex (a client limit): "abab" is 0x61626162.
	run bash -c "printf 'SET TEXTSIZE 4\nSELECT v, b, s FROM $T\n' | sql"
	assert_output "0x61626162|0x01020102|abcdefghij"
	run bash -c "printf 'SET TEXTSIZE 0\nSELECT b FROM $T\n' | sql"
	assert_output "0x010201020102"
}

@test "CREATE [UNIQUE] [NONCLUSTERED] INDEX: errors 1911, 1913 and 1505 as SQL Server gives them" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, u datetime2(7) NOT NULL, c nvarchar(10))
CREATE NONCLUSTERED INDEX ix_u ON dbo.$T (u DESC, id)
INSERT INTO $T VALUES (1, '2026-01-01', N'x'), (2, '2026-01-02', N'x')
SQL
	run sql <<< "CREATE INDEX ix_u ON $T (u)"
	assert_failure
	assert_output_contains "Msg 1913, Level 16"
	run sql <<< "CREATE INDEX ix_n ON $T (nope)"
	assert_output_contains "Msg 1911, Level 16"
	run sql <<< "CREATE UNIQUE INDEX ix_c ON $T (c)"
	assert_output_contains "Msg 1505, Level 16"
	run sql <<< "SELECT CONVERT(varchar(30), MAX(u), 126) FROM $T WHERE u > '2026-01-01'"
	assert_output "2026-01-02T00:00:00.0000000"
}
