/* plan_api: being written (issue 5). */
