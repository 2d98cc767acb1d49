'use strict';
// The one error class of the package. Every promise of a Client rejects with
// it; connect() throws it. Argument mistakes (sql not a string, ...) are
// programming errors and throw a TypeError synchronously instead.

class RegiondError extends Error {
  /**
   * @param {string} message what failed and what to do (libregiond's text)
   * @param {{sqlstate?: string, servedBy?: string, routeReason?: string}} [details]
   */
  constructor(message, details = {}) {
    super(message);
    this.name = 'RegiondError';
    this.sqlstate = details.sqlstate || '';   // SQLSTATE of a database error, else ""
    this.servedBy = details.servedBy || '';   // where it failed, or ""
    this.routeReason = details.routeReason || '';
  }
}

module.exports = { RegiondError };
