// pgjdbc (Debian libpostgresql-jdbc-java) against Eddy, run by tests/clients.rs:
// DDL and a PreparedStatement INSERT, DatabaseMetaData.getTables and getColumns,
// a PreparedStatement read with typed getters and ResultSetMetaData, and an
// error with its SQLSTATE. The output must equal jdbc.out.
import java.sql.*;

public class Jdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/eddy";
        try (Connection c = DriverManager.getConnection(url, "eddy", "")) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE STREAM orders (customer text NOT NULL, amount float8, placed_at timestamptz)");
                s.execute("CREATE VIEW revenue AS SELECT customer, count(*) AS orders, sum(amount) AS total, max(placed_at) AS last_order FROM orders GROUP BY customer");
            }
            try (PreparedStatement p = c.prepareStatement("INSERT INTO orders (customer, amount, placed_at) VALUES (?, ?, ?)")) {
                Object[][] rows = {{"ada", 12.5, "2026-01-01T10:00:00Z"}, {"ada", 7.5, "2026-01-02T11:00:00Z"}, {"bob", 3.25, "2026-01-03T12:00:00Z"}};
                for (Object[] r : rows) {
                    p.setString(1, (String) r[0]);
                    p.setDouble(2, (Double) r[1]);
                    p.setTimestamp(3, Timestamp.from(java.time.Instant.parse((String) r[2])));
                    p.executeUpdate();
                }
            }
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
            try (ResultSet rs = md.getTables(null, "public", "%", new String[]{"TABLE", "VIEW", "FOREIGN TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
            }
            try (ResultSet rs = md.getColumns(null, "public", "revenue", "%")) {
                while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE") + " nullable=" + rs.getString("IS_NULLABLE"));
            }
            try (PreparedStatement p = c.prepareStatement("SELECT customer, orders, total, last_order FROM revenue WHERE customer = ?")) {
                p.setString(1, "ada");
                try (ResultSet rs = p.executeQuery()) {
                    ResultSetMetaData m = rs.getMetaData();
                    while (rs.next()) {
                        System.out.println("row " + rs.getString(1) + " " + rs.getLong(2) + " " + rs.getDouble(3) + " " + rs.getTimestamp(4).toInstant());
                        for (int i = 1; i <= m.getColumnCount(); i++) System.out.println("type " + m.getColumnName(i) + " " + m.getColumnTypeName(i) + " " + rs.getObject(i).getClass().getSimpleName());
                    }
                }
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT * FROM nope");
            } catch (SQLException e) {
                System.out.println("error " + e.getSQLState());
            }
        }
    }
}
