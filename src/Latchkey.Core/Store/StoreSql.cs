using System.Data;
using System.Data.Common;

namespace Latchkey.Store;

/// <summary>
/// Commands as both backends run them: the same SQL text, parameters named <c>@name</c> (SQLite and Npgsql both read
/// that form) and bound with their type, so that a null is a typed null on PostgreSQL (a <c>bigint</c> column takes
/// it) and a <c>TEXT</c>, <c>INTEGER</c> or <c>BLOB</c> value on SQLite, as before.
/// </summary>
/// <remarks>
/// Every placeholder a statement names must be bound: SQLite refuses a statement with one missing, while Npgsql would
/// send it on as a column name. Both backends run the same text, so the SQLite half of the contract suite catches a
/// missing one for both.
/// </remarks>
internal static class StoreSql
{
    /// <summary>A command on <paramref name="connection"/>, inside <paramref name="transaction"/> when there is one.</summary>
    public static DbCommand Command(this DbConnection connection, DbTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    public static DbCommand Bind(this DbCommand command, string name, string? value) => command.Add(name, DbType.String, value);

    public static DbCommand Bind(this DbCommand command, string name, long? value) => command.Add(name, DbType.Int64, value);

    public static DbCommand Bind(this DbCommand command, string name, byte[] value) => command.Add(name, DbType.Binary, value);

    private static DbCommand Add(this DbCommand command, string name, DbType type, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.DbType = type;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
        return command;
    }
}
