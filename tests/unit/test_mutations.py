"""The purge's and the retention job's mutations, in both forms: on one server they run in chDB
(a current ClickHouse) and remove exactly their rows; the cluster form, which chDB cannot run
(no replication), names the replicated local table, without ON CLUSTER (it runs on one replica
of each shard, ClickHouse.execute_on_each_shard), and parses. It runs on 18.16 in
tests/cluster/test_erasure.py."""

from sinks.purge import purge_statements
from sinks.retention import retention_statement

LISTED = "('p1', 't1'), ('p1', 'it''s')"


def _count(chdb, sql: str) -> int:
    return int(str(chdb.query(sql, "TSV")).strip())


def test_purge_removes_only_the_listed_traces_of_their_project(chdb) -> None:
    for project, trace in (("p1", "t1"), ("p1", "t2"), ("p2", "t1")):
        chdb.query(f"INSERT INTO agenttrace.traces (project_id, id) VALUES ('{project}', '{trace}')")
        values = f"('{project}', 'o-{trace}', '{trace}')"
        chdb.query(f"INSERT INTO agenttrace.observations (project_id, id, trace_id) VALUES {values}")
    for _, sql in purge_statements(LISTED, "agenttrace"):
        chdb.query(sql.replace("ALTER TABLE ", "ALTER TABLE agenttrace.", 1) + " SETTINGS mutations_sync = 1")
    left = str(chdb.query("SELECT project_id, id FROM agenttrace.traces ORDER BY ALL", "CSV")).split()
    assert left == ['"p1","t2"', '"p2","t1"']
    assert _count(chdb, "SELECT count() FROM agenttrace.observations WHERE trace_id = 't1'") == 1
    # The index by trace (filled by its view) keeps nothing of the purged traces either.
    left = str(chdb.query("SELECT project_id, trace_id FROM agenttrace.observations_by_trace ORDER BY ALL", "CSV"))
    assert left.split() == ['"p1","t2"', '"p2","t1"']


def test_retention_statement_runs(chdb) -> None:
    chdb.query("INSERT INTO agenttrace.scores (project_id, id, trace_id) VALUES ('p3', 's1', 't1')")
    sql = retention_statement("scores", "project_id = 'p3'", "agenttrace")
    chdb.query(sql.replace("ALTER TABLE ", "ALTER TABLE agenttrace.", 1) + " SETTINGS mutations_sync = 1")
    assert _count(chdb, "SELECT count() FROM agenttrace.scores WHERE project_id = 'p3'") == 0


def test_cluster_mutations_address_the_replicated_local_table(chdb) -> None:
    statements = [sql for _, sql in purge_statements(LISTED, "agenttrace", "c1")]
    statements.append(retention_statement("observations", "project_id = 'p'", "agenttrace", "c1"))
    tables = ("traces", "observations", "scores", "observations_by_trace", "observations")
    for sql, table in zip(statements, tables, strict=True):
        assert sql.startswith(f"ALTER TABLE agenttrace.{table}_local DELETE WHERE "), sql
        ast = str(chdb.query(f"EXPLAIN AST {sql}", "TSV"))
        assert ast.startswith(f"AlterQuery agenttrace {table}_local"), ast[:200]
